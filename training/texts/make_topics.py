"""How ``topics.tsv`` was made: 440 short English texts, 110 per topic (sport, weather, food, technology), each a
sentence composed from hand-written subjects, verbs and objects of its topic, a third with a topic-free filler
sentence added and a tenth with a second sentence of the same topic. Written for the demo: the texts are
grammatical but formulaic, and a classifier that recognises the topic words scores near 100% on held-out texts;
that says the serving path works, not that the model understands English. Rerun to regenerate the same file:
``python training/texts/make_topics.py``.
"""

import random
from pathlib import Path

random.seed(17)
topics = {
    "sport": dict(
        subj=[
            "the home team",
            "our striker",
            "the goalkeeper",
            "the coach",
            "the league leaders",
            "the young sprinter",
            "the tennis champion",
            "the cycling team",
            "the visiting side",
            "the captain",
            "the referee",
            "the marathon runner",
        ],
        verb=[
            "scored twice in",
            "lost badly in",
            "won the final of",
            "was injured during",
            "celebrated after",
            "trained hard before",
            "was sent off in",
            "set a new record in",
            "missed a penalty in",
            "came back strongly in",
        ],
        obj=[
            "the second half",
            "the cup match",
            "the derby",
            "the championship",
            "the relay race",
            "the season opener",
            "the away game",
            "the grand slam",
            "the penalty shootout",
            "the qualifying round",
        ],
    ),
    "weather": dict(
        subj=[
            "a cold front",
            "heavy rain",
            "the morning fog",
            "a summer heatwave",
            "strong winds",
            "the forecast",
            "thunderstorms",
            "light snow",
            "the storm",
            "a warm breeze",
            "freezing temperatures",
            "the humidity",
        ],
        verb=[
            "is expected over",
            "swept across",
            "flooded parts of",
            "brought frost to",
            "cleared up over",
            "will linger around",
            "caused power cuts in",
            "dropped below zero in",
            "is moving towards",
            "left puddles all over",
        ],
        obj=[
            "the coast",
            "the northern hills",
            "the valley tonight",
            "the city this weekend",
            "the mountain passes",
            "the farmland",
            "the airport",
            "the river banks",
            "the islands",
            "the southern plains",
        ],
    ),
    "food": dict(
        subj=[
            "the new bakery",
            "my grandmother",
            "this curry",
            "the chef",
            "a bowl of soup",
            "the street vendor",
            "fresh pasta",
            "the vegan menu",
            "the chocolate cake",
            "our neighbour",
            "the sushi bar",
            "a slice of pizza",
        ],
        verb=[
            "tastes great with",
            "was served alongside",
            "is best eaten with",
            "goes well with",
            "was seasoned with",
            "needs more",
            "was baked with",
            "comes topped with",
            "is cooked slowly in",
            "pairs nicely with",
        ],
        obj=[
            "garlic butter",
            "fresh herbs",
            "a spicy sauce",
            "roasted vegetables",
            "a glass of red wine",
            "melted cheese",
            "lemon and pepper",
            "sweet onions",
            "crusty bread",
            "coconut milk",
        ],
    ),
    "technology": dict(
        subj=[
            "the new phone",
            "this laptop",
            "the software update",
            "the start-up",
            "the smart watch",
            "our server",
            "the graphics card",
            "the app",
            "the robot vacuum",
            "the chip maker",
            "the browser",
            "the cloud service",
        ],
        verb=[
            "crashed right after",
            "ships with",
            "runs faster thanks to",
            "was hacked because of",
            "now supports",
            "drains the battery due to",
            "was redesigned around",
            "struggles to handle",
            "automatically installs",
            "was benchmarked against",
        ],
        obj=[
            "the latest firmware",
            "a bigger battery",
            "an open source driver",
            "the new processor",
            "faster wireless charging",
            "a security patch",
            "machine learning features",
            "the operating system",
            "encrypted backups",
            "a high resolution screen",
        ],
    ),
}
fillers = [
    "I heard about it on the radio.",
    "Everyone was talking about it.",
    "It happened yesterday.",
    "Honestly, I did not expect that.",
    "My friend sent me a message about it.",
    "That was the news this morning.",
    "What a day.",
    "Nobody saw it coming.",
]
lines = set()
for label, w in topics.items():
    n = 0
    while n < 110:
        t = f"{random.choice(w['subj'])} {random.choice(w['verb'])} {random.choice(w['obj'])}"
        t = t[0].upper() + t[1:] + "."
        r = random.random()
        if r < 0.3:
            t = t + " " + random.choice(fillers)
        elif r < 0.45:
            t = random.choice(fillers) + " " + t
        elif r < 0.55:
            w2 = topics[label]
            t = (
                t
                + " "
                + (
                    random.choice(w2["subj"]) + " " + random.choice(w2["verb"]) + " " + random.choice(w2["obj"])
                ).capitalize()
                + "."
            )
        if (label, t) in lines:
            continue
        lines.add((label, t))
        n += 1
rows = sorted(lines)  # a set has no stable order; sorted, then shuffled by the seed
random.shuffle(rows)
with open(Path(__file__).with_name("topics.tsv"), "w") as f:
    f.write("label\ttext\n")
    for label, t in rows:
        f.write(f"{label}\t{t}\n")
print(len(rows), "texts")
