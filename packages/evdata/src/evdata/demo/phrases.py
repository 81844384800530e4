"""SYNTHETIC text material for the demo corpus: invented first-person phrasings, not real posts.

Every evidence core is a pair ``(as written in the post, a paraphrase with the same meaning)``;
the paraphrase becomes the annotation sentence of the rows that exercise the semantic alignment
step. ``{slot}`` names are filled from ``SLOTS`` (the same values in both halves of a pair).
"""

from __future__ import annotations

SLOTS: dict[str, tuple[str, ...]] = {
    "duration": (
        "two weeks",
        "a month",
        "three months",
        "half a year",
        "most of this year",
        "a few weeks",
        "six weeks",
        "the whole semester",
    ),
    "short_duration": ("a month", "two months", "six weeks", "a couple of months", "the last few weeks"),
    "activity": (
        "painting",
        "playing guitar",
        "going to the gym",
        "reading",
        "hiking",
        "baking",
        "skating",
        "drawing",
        "running",
        "photography",
        "gardening",
        "writing",
    ),
    "hobby_item": ("guitar", "sketchbook", "camera", "bike", "piano", "PS5", "skateboard", "sewing machine"),
    "person": (
        "my girlfriend",
        "my boyfriend",
        "my mom",
        "my dad",
        "my roommate",
        "my best friend",
        "my wife",
        "my husband",
        "my sister",
        "my partner",
    ),
    "weight": ("ten pounds", "like 15 lbs", "almost 8 kg", "twenty pounds", "about 6 kilos"),
    "late_time": ("4am", "5 in the morning", "3am", "like 4:30", "sunrise"),
    "early_time": ("3am", "2:30", "4 am", "3 in the morning"),
    "hours": ("three", "four", "two", "three or four"),
    "task": ("my thesis", "work emails", "my assignments", "the report my boss wants", "my job applications"),
    "event": (
        "the breakup",
        "I moved out",
        "my grandma passed",
        "I lost my job",
        "I started college",
        "the surgery",
        "my divorce",
        "we moved",
    ),
    "med": ("sertraline", "Lexapro", "fluoxetine", "Wellbutrin"),
    "med2": ("venlafaxine", "Zoloft", "bupropion", "citalopram"),
    "job": (
        "a barista",
        "a nurse",
        "a line cook",
        "an accountant",
        "a warehouse picker",
        "a teacher's aide",
        "a junior developer",
        "a cashier",
    ),
    "city": ("Denver", "Leeds", "a tiny town in Ohio", "Toronto", "Phoenix", "Melbourne", "the suburbs", "Glasgow"),
    "age": ("19", "22", "24", "27", "31", "34", "38", "45", "17", "20"),
    "pet": ("cat", "dog", "rabbit", "hamster", "parrot"),
    "pet_name": ("Biscuit", "Mochi", "Luna", "Pickles", "Gus", "Nugget", "Pepper", "Ziggy"),
    "day": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
    "show": ("The Office", "some cooking show", "Bojack", "a true crime podcast", "old Simpsons episodes", "a Korean drama"),
    "game": ("Minecraft", "Stardew Valley", "Elden Ring", "League", "Animal Crossing", "Fortnite"),
    "food": ("pizza", "ramen", "tacos", "pasta", "pho", "a burrito"),
    "number": ("two", "three", "four", "five", "six"),
    "month": ("January", "March", "May", "July", "September", "November"),
    "money": ("$200", "$1,200", "like 400 bucks", "$80", "£300"),
}

# (post form, paraphrase) per symptom: first person, informal, invented.
EVIDENCE: dict[str, tuple[tuple[str, str], ...]] = {
    "DEPRESSED_MOOD": (
        ("I feel empty pretty much every single day", "Almost every day there's just this emptiness inside me"),
        (
            "I've been crying myself to sleep most nights for {duration}",
            "For {duration} I've cried almost every night before falling asleep",
        ),
        ("Everything feels grey and heavy and I can't shake it", "There's a heavy, colorless feeling over everything that won't go away"),
        ("I'm just so sad all the time and I don't even know why", "I constantly feel sad without any clear reason"),
        ("Most days I feel hopeless, like nothing is ever going to get better", "I've lost hope that things will ever improve for me"),
        ("I wake up already feeling miserable", "The misery starts the moment I open my eyes in the morning"),
        ("It's like there's a dark cloud following me around all day", "All day long I feel like a dark cloud is hanging over me"),
        ("I feel numb and down basically all the time now", "These days I'm down and emotionally numb nearly constantly"),
        ("I can't remember the last time I felt genuinely happy", "It's been so long since I actually felt happy that I can't recall it"),
        ("There's this constant sadness sitting on my chest", "A constant heavy sadness weighs on my chest"),
        ("I cry over the smallest things and I feel low every day", "Every day I feel low and tiny things make me cry"),
    ),
    "ANHEDONIA": (
        (
            "I used to love {activity} but now I can't be bothered to even start",
            "{activity} used to be my favorite thing and now I have zero interest in it",
        ),
        ("Nothing is fun anymore, not even {activity}", "I don't enjoy anything now, {activity} included"),
        (
            "My friends invite me out and I just don't care enough to go",
            "I turn down my friends' invitations because I have no interest in going out",
        ),
        (
            "My {hobby_item} has been collecting dust for months and I feel nothing about it",
            "I haven't used my {hobby_item} in months and I don't even miss it",
        ),
        ("Stuff that used to make me happy just feels pointless now", "Things I once enjoyed now seem meaningless to me"),
        (
            "I stopped {activity} completely because it doesn't feel good anymore",
            "I gave up {activity} since I no longer get any pleasure from it",
        ),
        (
            "Even playing {game} with my friends feels like a chore now",
            "Gaming with friends, which I used to enjoy, now feels like an obligation",
        ),
        ("I don't look forward to anything at all", "There's nothing I'm excited about anymore"),
        (
            "Music used to be my whole life and now I don't even listen to it",
            "I've stopped listening to music even though it used to mean everything to me",
        ),
        ("I just go through the motions, nothing gives me any joy", "Nothing brings me pleasure, I'm just going through the motions"),
    ),
    "APPETITE_CHANGE": (
        (
            "I've lost {weight} in {short_duration} because I just don't feel hungry",
            "I've dropped {weight} recently since I have no appetite",
        ),
        ("Some days the only thing I eat is a handful of crackers", "On some days I only manage to eat a few crackers"),
        ("I've been stress eating like crazy and gained {weight}", "I keep overeating because of stress and have put on {weight}"),
        ("Food just tastes like nothing to me so I skip most meals", "I skip meals because food has lost all its taste for me"),
        (
            "I forget to eat until it's like 9pm and then I force down something small",
            "I often go all day without eating until late evening, and then I only eat a little",
        ),
        ("I binge on junk food every night even when I'm not hungry", "Every night I eat a lot of junk food without being hungry"),
        ("My appetite is completely gone, I have to force myself to eat", "I have no appetite at all and eating takes real effort"),
        ("My clothes are all loose now because I barely eat", "I eat so little that my clothes no longer fit me"),
    ),
    "SLEEP_ISSUES": (
        (
            "I can't fall asleep until {late_time} no matter how early I go to bed",
            "Even when I get into bed early, I'm still awake until {late_time}",
        ),
        ("These days I get maybe {hours} hours of sleep, if that", "I barely sleep anymore, maybe {hours} hours a night"),
        (
            "I've been sleeping like 14 hours a day and still wake up wanting more",
            "I sleep around fourteen hours daily and it's still never enough",
        ),
        (
            "I wake up at {early_time} every night and just lie there staring at the ceiling",
            "Every night I'm awake at {early_time}, lying in bed looking at the ceiling",
        ),
        (
            "My sleep schedule is completely wrecked, I'm up all night and sleep through the day",
            "I stay awake all night and sleep during the day, my sleep is a mess",
        ),
        (
            "I keep waking up every hour or so and can never get back to sleep properly",
            "My sleep is broken up, I wake constantly and struggle to fall back asleep",
        ),
        ("I spend whole weekends in bed sleeping", "On weekends I sleep in bed the entire time"),
        ("Insomnia has been kicking my ass for {duration}", "For {duration} I've been struggling badly with insomnia"),
    ),
    "PSYCHOMOTOR": (
        (
            "I can't sit still, I keep pacing around my apartment for hours",
            "I'm so restless that I walk back and forth in my apartment for hours",
        ),
        ("Everything I do feels like I'm moving in slow motion", "I feel like my body moves super slowly, like in slow motion"),
        ("My hands won't stop fidgeting and my leg is always bouncing", "I'm constantly fidgeting with my hands and bouncing my leg"),
        ("People at work keep asking why I talk so slowly now", "Coworkers have noticed that my speech has become really slow"),
        ("I feel so agitated and jittery that I can't stay in one place", "I'm too agitated and restless to stay put anywhere"),
        (
            "It takes me forever to get dressed because my body feels so slow",
            "Even getting dressed takes ages because I'm physically slowed down",
        ),
    ),
    "FATIGUE": (
        ("I'm exhausted all the time even when I've done nothing", "I'm constantly worn out even on days when I do nothing at all"),
        ("Just taking a shower wipes me out for the rest of the day", "A simple shower leaves me drained for the whole day"),
        ("I have zero energy, I can barely get off the couch", "I have no energy and can hardly get up from the couch"),
        ("My body feels like it's made of lead every morning", "Each morning my body feels incredibly heavy and tired"),
        ("I'm too tired to even cook so I just lie there", "I'm so drained that I can't even make food for myself"),
        ("By noon I'm completely drained and need to lie down", "I run out of energy by midday and have to lie down"),
        ("I feel physically exhausted no matter how much I sleep", "However much sleep I get, I'm still physically worn out"),
    ),
    "WORTHLESSNESS": (
        ("I feel like a complete failure at everything", "I see myself as failing at everything I do"),
        ("I feel like a burden to {person} and everyone around me", "I think I'm just a burden on {person} and the people in my life"),
        ("I hate myself for being so useless", "I despise myself because I'm worthless"),
        (
            "I keep replaying every mistake I've ever made and feel so guilty",
            "I'm constantly going over all my past mistakes and drowning in guilt",
        ),
        ("I'm worthless and I know it", "I know I have no value as a person"),
        ("Everything that went wrong with {person} is my fault", "I blame myself for everything that went wrong with {person}"),
        ("I don't deserve the people who are nice to me", "I feel undeserving of anyone's kindness"),
        ("Compared to everyone my age I'm a total loser", "I feel like a loser next to other people my age"),
    ),
    "COGNITIVE_ISSUES": (
        (
            "I can't focus on anything, I read the same page like ten times",
            "I have trouble concentrating and have to reread pages over and over",
        ),
        ("My brain feels foggy all the time and I forget things constantly", "I'm always in a mental fog and keep forgetting stuff"),
        ("Even picking what to eat feels like an impossible decision", "I struggle to make even simple decisions like choosing food"),
        (
            "I zone out in the middle of conversations and lose track of what people said",
            "During conversations I drift off and can't follow what was said",
        ),
        (
            "My grades are tanking because I literally can't concentrate in class",
            "I can't concentrate during lectures, so my grades are dropping",
        ),
        (
            "I sit at my desk for hours and can't get a single thought together for {task}",
            "For hours I can't organize my thoughts enough to work on {task}",
        ),
    ),
    "SUICIDAL_THOUGHTS": (
        (
            "I keep thinking everyone would be better off if I just wasn't here",
            "I often think people would be better off without me around",
        ),
        ("I've been having thoughts about ending my life", "Thoughts of killing myself keep coming up"),
        ("Sometimes I wish I could just go to sleep and not wake up", "I sometimes wish I would fall asleep and never wake up"),
        ("I looked up ways to kill myself last night", "Last night I searched online for methods of suicide"),
        ("I think about dying almost every day", "Death is on my mind nearly every day"),
        ("I don't want to be alive anymore", "I no longer want to live"),
        ("I've started planning how I would do it", "I have begun making a plan for how I'd end my life"),
    ),
}

# One sentence that is evidence for two symptoms at once (annotated twice, once per symptom).
TWO_SYMPTOMS: tuple[tuple[str, str, str, str], ...] = (
    (
        "I'm so exhausted all the time that I can't focus on anything at work",
        "I'm constantly tired and can't concentrate at my job",
        "FATIGUE",
        "COGNITIVE_ISSUES",
    ),
    ("I barely eat and barely sleep anymore", "I hardly eat or sleep these days", "APPETITE_CHANGE", "SLEEP_ISSUES"),
    (
        "I feel worthless and honestly I don't see the point in living",
        "I feel I have no worth and see no reason to stay alive",
        "WORTHLESSNESS",
        "SUICIDAL_THOUGHTS",
    ),
    (
        "I'm sad all the time and nothing I used to enjoy feels good anymore",
        "I feel sad constantly and my old hobbies bring me no pleasure",
        "DEPRESSED_MOOD",
        "ANHEDONIA",
    ),
    (
        "I sleep twelve hours and I'm still too tired to do anything",
        "Even after twelve hours of sleep I have no energy for anything",
        "SLEEP_ISSUES",
        "FATIGUE",
    ),
)

# Mentions a symptom's topic but is not evidence of it in the poster (annotated with status 0).
DISTRACTORS: dict[str, tuple[str, ...]] = {
    "DEPRESSED_MOOD": (
        "My sister has been really depressed since her divorce and I'm trying to help her",
        "We watched a sad movie last night and everyone cried except me",
        "I was pretty down in high school but that's honestly behind me now",
        "My psych class is doing a unit on depression this month",
    ),
    "ANHEDONIA": (
        "I still love {activity}, it's the one thing that keeps me going",
        "My friend lost interest in {activity} after college and sold all his gear",
        "I quit {activity} because it got too expensive, not because I didn't like it",
    ),
    "APPETITE_CHANGE": (
        "We got {food} for dinner and it was amazing",
        "My doctor wants me to cut down on sugar because of my blood tests",
        "My dog has been refusing his food so we took him to the vet",
    ),
    "SLEEP_ISSUES": (
        "My roommate snores so loud the whole floor can hear it",
        "I pulled an all-nighter for finals but that's just college",
        "The baby next door wakes up crying at night sometimes",
    ),
    "PSYCHOMOTOR": (
        "I went for a run this morning to clear my head",
        "My grandpa moves really slowly since his hip surgery",
        "The new guy at work talks super fast when he's nervous",
    ),
    "FATIGUE": (
        "Work was exhausting today because of inventory, but a normal kind of tired",
        "My mom is always tired after her night shifts at the hospital",
        "I was wiped after the hike on {day} but it was worth it",
    ),
    "WORTHLESSNESS": (
        "My boss told me I did a great job on the project",
        "My brother always jokes that he's useless at cooking",
        "I felt guilty for eating the last slice of {food} but it was a joke between us",
    ),
    "COGNITIVE_ISSUES": (
        "I forgot my keys at home once last week, classic me",
        "It was hard to focus on the exam because of the construction noise outside",
        "My dad keeps forgetting names, we think it's just getting older",
    ),
    "SUICIDAL_THOUGHTS": (
        "A guy from my high school died by suicide last year and it shook everyone",
        "We watched a documentary about suicide prevention in health class",
        "My friend called a crisis line for her cousin last month and they were really helpful",
    ),
}

# Rows labelled SPECIAL_CASE (kept by the readers, reported, not one of the nine symptoms).
SPECIAL_CASES: tuple[tuple[str, int], ...] = (
    ("I was diagnosed with major depression two years ago and I'm on {med} now", 1),
    ("My psychiatrist switched me from {med} to {med2} last month", 1),
    ("My sister has bipolar disorder and it's been hard on the family", 0),
    ("I got tested for ADHD once but it came back negative", 0),
)

OPENERS: tuple[str, ...] = (
    "", "", "", "", "Honestly, ", "Lately ", "For the past {duration} ", "idk, ", "Tbh ", "Recently ",
    "The thing is, ", "Ever since {event}, ", "On top of that, ", "And ", "Also ", "Plus ", "Like, ",
)  # fmt: skip
PARAPHRASE_OPENERS: tuple[str, ...] = ("", "", "", "These days ", "Recently, ", "Right now ", "At this point ")
CLOSERS: tuple[str, ...] = (".", ".", ".", ".", "!", "...", " lol.", " tbh.", ", it's awful.", " and I don't know what to do.", " and it's getting worse.", ", seriously.")  # fmt: skip
PARAPHRASE_CLOSERS: tuple[str, ...] = (".", ".", ".", "!")

# Neutral sentences that pad a post out to its length: life, work, people, the subreddit itself.
FILLER: tuple[str, ...] = (
    "I'm {age} and I work as {job} in {city}",
    "I've been with {person} for {number} years now",
    "We moved to {city} last year for {person}'s job",
    "Work has been busy lately, lots of overtime and double shifts",
    "My {pet} {pet_name} follows me around the apartment all day",
    "I don't really know why I'm posting this here",
    "I've read a lot of posts on this sub and finally decided to write my own",
    "I'm not sure if this is the right place for this",
    "Last {day} {person} asked me if I wanted to go see a movie",
    "{person} keeps telling me I should talk to someone about it",
    "I had a doctor's appointment on {day} and it went fine I guess",
    "Classes start again in {number} weeks",
    "My dad lost his job in the spring and money has been tight since then",
    "We had a huge argument about money and haven't really talked since",
    "I spent most of {day} rewatching {show}",
    "My car broke down again and the repair is going to cost {money}",
    "I've been playing a lot of {game} with people online",
    "Rent here went up again, which is great",
    "My manager moved me to the night shift without asking",
    "My mom calls every {day} to check in on me",
    "I tried journaling because my therapist suggested it",
    "We ordered {food} and watched {show} together",
    "I have {number} siblings and I'm the oldest",
    "I'm the first person in my family to go to college",
    "My landlord still hasn't fixed the heating",
    "I started a new job {number} months ago",
    "I don't have many friends where I live now",
    "Most of my friends moved away after graduation",
    "My best friend is getting married in the summer",
    "I've been trying to save up for a car",
    "It's been raining here for like a week straight",
    "I live with {number} roommates in a tiny apartment",
    "I go to community college part time and work the rest of the week",
    "My family doesn't really talk about feelings",
    "I told {person} about this post and they said to go for it",
    "I did a short course in {activity} last year",
    "My parents divorced when I was a kid",
    "I usually just scroll on my phone during my lunch break",
    "Our team got a new manager and she seems nice",
    "I've been reading a lot of posts here at night",
    "It's weird writing this out",
    "I don't even know what I expect from posting this",
    "I grew up in {city} and moved away at {age}",
    "There's a park near my place where I walk {pet_name} sometimes",
    "I picked up a few extra shifts to cover the rent",
    "My sister is visiting next week with her kids",
    "I have a dentist appointment I keep rescheduling",
    "I cleaned my whole room on {day} for the first time in ages",
    "My phone screen cracked and I can't afford to fix it",
    "I got a text from an old friend out of nowhere",
    "My neighbors are having a party as I type this",
    "I've been thinking about going back to school for {activity}",
    "We adopted {pet_name} from a shelter {number} years ago",
    "I'm typing this on my phone so sorry for any typos",
)

# Composed fillers (when, what, how it went) give thousands of distinct everyday sentences, so long
# posts do not repeat themselves.
FILLER_WHEN: tuple[str, ...] = (
    "Yesterday", "Last weekend", "This morning", "On {day}", "A couple of days ago", "Over the holidays",
    "After work", "Before my shift", "Last night", "Earlier this week", "Around lunchtime", "Back in {month}",
)  # fmt: skip
FILLER_WHAT: tuple[str, ...] = (
    "I went to the grocery store with {person}", "{person} and I cooked {food}", "I fixed the leaking tap in the bathroom",
    "I watched {show}", "I helped {person} move some furniture", "I took {pet_name} to the vet for a checkup",
    "I called {person}", "we drove out to see my aunt", "I finally did my laundry", "I had {food} for lunch",
    "I went to a coworker's birthday thing", "I sat in traffic for an hour", "I picked up my prescription",
    "I rearranged my desk", "I went to the library to return some books", "{person} came over to borrow my drill",
    "I sorted through old photos", "we went to the farmers market", "I tried to assemble an IKEA shelf",
    "I walked {pet_name} around the block", "I replied to a bunch of emails", "I had a video call with my cousin",
    "I got my hair cut", "I went to {person}'s soccer game", "I painted the hallway",
)  # fmt: skip
FILLER_TAIL: tuple[str, ...] = (
    "", "", "", " and it was fine", " for a couple of hours", " because we had nothing else planned",
    " like we always do", " which took way longer than expected", " with some music on", " before it got dark",
)  # fmt: skip

INTROS: tuple[str, ...] = (
    "Throwaway account because my friends know my main.",
    "Long time lurker, first time posting.",
    "Sorry in advance, this is going to be long.",
    "Not sure where else to put this.",
    "I need to get this off my chest.",
    "Hi everyone.",
    "Okay so.",
    "Mods, please remove if this isn't allowed.",
)
OUTROS: tuple[str, ...] = (
    "Thanks for reading if you made it this far.",
    "Sorry for the wall of text.",
    "Anyway, that's where I'm at.",
    "Any advice would be appreciated.",
    "Edit: thank you all for the kind replies, I read every single one.",
    "Has anyone else been through something like this?",
    "I just needed to say it somewhere.",
    "Edit: formatting.",
)
SHORT_POSTS: tuple[str, ...] = (
    "Anyone else here on a {day} night?",
    "Just checking in.",
    "Is this sub still active?",
    "Good morning everyone.",
    "Made it through another week.",
    "Quick question for the group.",
)

SYMPTOM_DESCRIPTIONS: dict[str, str] = {
    "DEPRESSED_MOOD": "depressed mood",
    "ANHEDONIA": "loss of interest or pleasure",
    "APPETITE_CHANGE": "a change in appetite or weight",
    "SLEEP_ISSUES": "disturbed sleep",
    "PSYCHOMOTOR": "psychomotor agitation or slowing",
    "FATIGUE": "fatigue and loss of energy",
    "WORTHLESSNESS": "worthlessness or excessive guilt",
    "COGNITIVE_ISSUES": "impaired concentration or indecisiveness",
    "SUICIDAL_THOUGHTS": "thoughts of death or suicide",
    "SPECIAL_CASE": "clinically relevant context outside the nine criteria",
}
