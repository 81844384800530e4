"""``invoke bench``: evspan's training and evaluation against the Hugging Face question-answering recipe.

``recipe`` is the pipeline a user would otherwise glue together from the Hugging Face example
(``AutoModelForQuestionAnswering``, ``Trainer``, a Python double loop over n-best indices), run as it
comes (``PLAIN``) and with the speed flags a careful user turns on (``TUNED``); ``ours`` runs evspan's
own training loop and evaluation on the same examples; ``hardware`` measures the machine (matmul peak,
resident memory); ``profile`` sorts a training step's torch.profiler events into categories; ``worker``
runs one side in a child process; ``runner`` runs the sides and writes the JSON; ``table`` prints it.
"""
