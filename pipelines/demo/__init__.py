"""The synthetic demo world: seven programs, eight recipients and a seeded population of
children with every consent and notice case the disclosure rules know.

``seed(engine, children, seed)`` replaces the demo rows (same seed, same rows);
``summarize(engine)`` counts them. Nothing here is about real people.
"""

from pipelines.demo.scenarios import ConsentScenario, NoticeScenario
from pipelines.demo.seed import DEFAULT_CHILDREN, DEFAULT_SEED, seed
from pipelines.demo.summary import ProgramCount, SeedSummary, summarize
from pipelines.demo.world import DEMO_DATE, PROGRAM_CODES, RECIPIENT_CODES

__all__ = [
    "DEFAULT_CHILDREN",
    "DEFAULT_SEED",
    "DEMO_DATE",
    "PROGRAM_CODES",
    "RECIPIENT_CODES",
    "ConsentScenario",
    "NoticeScenario",
    "ProgramCount",
    "SeedSummary",
    "seed",
    "summarize",
]
