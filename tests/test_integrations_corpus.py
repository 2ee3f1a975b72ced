"""The small corpus the LangChain and LlamaIndex tests search (no tests here)."""

from maxsim.search import Retriever

FILLER = " ".join(f"Section {i} lists the maintenance intervals of the station's pumps and valves." for i in range(40))
CORPUS = {
    "mars": ("Mars is called the red planet because iron oxide dust covers its surface.", {"topic": "space"}),
    "moon": ("The Moon raises tides on Earth's oceans twice a day.", {"topic": "space"}),
    "bread": ("Sourdough bread rises because wild yeast ferments the dough.", {"topic": "food"}),
    "manual": (FILLER + " The emergency shutdown valve of the reactor is painted bright orange.", {"topic": "plant"}),
}
SHORT = {key: value for key, value in CORPUS.items() if key != "manual"}  # cheap to encode again


def build(folder, model) -> Retriever:
    """An exact, hybrid retriever over CORPUS; "manual" is long enough to be split into passages."""
    retriever = Retriever.create(folder, model, index="exact", hybrid=True, model_name="default")
    retriever.add([text for text, _ in CORPUS.values()], ids=list(CORPUS), metadata=[m for _, m in CORPUS.values()])
    return retriever
