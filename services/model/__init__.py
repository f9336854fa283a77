"""The fraud model shared by the scoring and learner services: pure code, no Kafka.

``fraud_model`` learns and scores online, ``batch`` is the kind fitted at once on a labelled
window (the scheduled challenger), ``reasons`` explains a score, ``metrics`` tracks
prequential performance, ``artifacts`` stores and verifies model versions, and
``compare`` is the model-choice experiment (``python -m fraudstream.compare``).
"""

from services.model.artifacts import ArtifactError, ArtifactStore, dump, load_verified, make_store
from services.model.batch import BatchModel, Model
from services.model.fraud_model import KINDS, FraudModel
from services.model.metrics import Prequential
from services.model.reasons import explain, explain_many

__all__ = [
    "KINDS",
    "ArtifactError",
    "ArtifactStore",
    "BatchModel",
    "FraudModel",
    "Model",
    "Prequential",
    "dump",
    "explain",
    "explain_many",
    "load_verified",
    "make_store",
]
