"""``invoke bench``: evspan's training and evaluation against the Hugging Face question-answering recipe.

``recipe`` is the pipeline a user would otherwise glue together from the Hugging Face example
(windows padded to ``max_length``, ``AutoModelForQuestionAnswering``, ``Trainer``, a Python double
loop over n-best indices); ``ours`` runs evspan's own training loop and evaluation on the same
examples; ``hardware`` measures the machine (matmul peak, resident memory); ``worker`` runs one side
in a child process; ``runner`` alternates the sides, prints the table and writes the JSON.
"""
