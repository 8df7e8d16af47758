"""textgen: train and sample recurrent text-generation models with PyTorch.

The public API, in the order data flows through it: tokenizers, the data pipeline, the model,
loss and optimizers, the Trainer, checkpoints and the Sampler (with its logits processors and
stop-string matcher).

The package logs through the ``textgen`` logger and, as a library should, only installs a
`logging.NullHandler`: configure logging to see its messages (the Trainer prints its own while
a run is in progress when you have not).
"""

import logging

from textgen.callbacks import Callback, EarlyStopping, SampleCallback, TensorBoardCallback
from textgen.checkpoint import Checkpoint, CheckpointError, load_checkpoint, save_checkpoint
from textgen.data import (
    Corpus,
    DataConfig,
    RandomWindowBatcher,
    StreamBatcher,
    TokenSplit,
    available_corpora,
    corpus_path,
    load_corpus,
    prepare_corpus,
)
from textgen.evaluation import evaluate_split
from textgen.explain import Explanation, TokenExplanation, explain
from textgen.export import export_model
from textgen.loss import LanguageModelMetrics, compute_metrics, sequence_cross_entropy
from textgen.model import LSTMLanguageModel, ModelConfig, State, detach_state, select_state
from textgen.novelty import CopiedSpan, NoveltyIndex, NoveltyReport, novelty_report
from textgen.optim import ClipResult, build_optimizer, clip_gradients, l1_penalty
from textgen.plot import plot_metrics
from textgen.processors import (
    BannedStringsProcessor,
    BannedTokensProcessor,
    FrequencyPenaltyProcessor,
    LogitsProcessor,
    MinNewTokensProcessor,
    MinPProcessor,
    NoRepeatNGramProcessor,
    PresencePenaltyProcessor,
    RepetitionPenaltyProcessor,
    TemperatureProcessor,
    TopKProcessor,
    TopPProcessor,
    TypicalProcessor,
)
from textgen.run_config import format_run_config, read_run_config
from textgen.runs import RunPlan, build_trainer, plan_run
from textgen.runtime import resolve_device, seed_everything
from textgen.sampler import Generation, SampleConfig, Sampler
from textgen.schedules import LRScheduler, build_scheduler
from textgen.stopping import StopMatcher
from textgen.tokenizers import (
    BPETokenizer,
    CharTokenizer,
    Tokenizer,
    UnknownTokenError,
    WordTokenizer,
    build_tokenizer,
    tokenizer_from_dict,
)
from textgen.train_config import resume_config
from textgen.trainer import TrainConfig, Trainer, TrainingDivergedError, TrainResult
from textgen.validation import InvalidTypeError, InvalidValueError

logging.getLogger("textgen").addHandler(logging.NullHandler())

__version__ = "0.1.0"

__all__ = [
    "BPETokenizer",
    "BannedStringsProcessor",
    "BannedTokensProcessor",
    "Callback",
    "CharTokenizer",
    "Checkpoint",
    "CheckpointError",
    "ClipResult",
    "CopiedSpan",
    "Corpus",
    "DataConfig",
    "EarlyStopping",
    "Explanation",
    "FrequencyPenaltyProcessor",
    "Generation",
    "InvalidTypeError",
    "InvalidValueError",
    "LRScheduler",
    "LSTMLanguageModel",
    "LanguageModelMetrics",
    "LogitsProcessor",
    "MinNewTokensProcessor",
    "MinPProcessor",
    "ModelConfig",
    "NoRepeatNGramProcessor",
    "NoveltyIndex",
    "NoveltyReport",
    "PresencePenaltyProcessor",
    "RandomWindowBatcher",
    "RepetitionPenaltyProcessor",
    "RunPlan",
    "SampleCallback",
    "SampleConfig",
    "Sampler",
    "State",
    "StopMatcher",
    "StreamBatcher",
    "TemperatureProcessor",
    "TensorBoardCallback",
    "TokenExplanation",
    "TokenSplit",
    "Tokenizer",
    "TopKProcessor",
    "TopPProcessor",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "TrainingDivergedError",
    "TypicalProcessor",
    "UnknownTokenError",
    "WordTokenizer",
    "__version__",
    "available_corpora",
    "build_optimizer",
    "build_scheduler",
    "build_tokenizer",
    "build_trainer",
    "clip_gradients",
    "compute_metrics",
    "corpus_path",
    "detach_state",
    "evaluate_split",
    "explain",
    "export_model",
    "format_run_config",
    "l1_penalty",
    "load_checkpoint",
    "load_corpus",
    "novelty_report",
    "plan_run",
    "plot_metrics",
    "prepare_corpus",
    "read_run_config",
    "resolve_device",
    "resume_config",
    "save_checkpoint",
    "seed_everything",
    "select_state",
    "sequence_cross_entropy",
    "tokenizer_from_dict",
]
