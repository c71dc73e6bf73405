"""What a study records about itself, typed: the study's user attributes as one record.

The study stays a plain Optuna study (each field is a study user attribute that
optuna-dashboard shows); this module is the one place that knows their keys.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna

# What a resumed study must share with the run that resumes it.
IDENTITY = ("model", "data", "train_size", "input_size", "hw", "objectives")


@dataclass(frozen=True)
class StudyInfo:
    """A study's attributes. A field a study made by an older version lacks is None (or empty).

    Attributes:
        model: Model name (``small_cnn``, a timm name...).
        data: Data label (``digits``, ``fashion-mnist:DIR``...).
        train_size: Training images when a subset was used.
        input_size: Input resolution in pixels.
        hw: ``PROFILE:UNIT`` the study is priced on.
        objectives: Objective names, accuracy first.
        checkpoint: Path of the uncompressed weights on the machine that made the study.
        checkpoint_sha256: Their hash.
        num_classes: Classifier outputs.
        profile_version: Version of the profile the study is priced with.
        space_signature: Signature of the search space (a resumed run must have the same one).
        heartbeat_s: Seconds between heartbeats of running trials.
        recipe: The study's recipe (``spaces.plan.Recipe`` as a dict).
        sampler: Sampler name.
        cost_scale: How the sampler read the costs: ``log`` or ``linear`` (``core.log_costs``).
        reference_val_top1: Validation top-1 of the uncompressed FP32 ONNX graph.
        reference_test_top1: Its test top-1.
        data_spec: The ``DataSpec`` (as a dict) trials were scored on, to score a test split later.
        rescored_from: The study this one re-prices (``search rescore``), if any.
        compare_wall_s: Seconds `search compare` spent on this study, over every invocation.
        compare_driver_peak_mb: Peak memory of `search compare`'s driver while it ran this study.
    """

    model: str = ""
    data: str = ""
    train_size: int | None = None
    input_size: int | None = None
    hw: str = ""
    objectives: tuple[str, ...] = ()
    checkpoint: str | None = None
    checkpoint_sha256: str | None = None
    num_classes: int | None = None
    profile_version: int | None = None
    space_signature: str | None = None
    heartbeat_s: int | None = None
    recipe: dict[str, Any] | None = None
    sampler: str | None = None
    cost_scale: str | None = None
    reference_val_top1: float | None = None
    reference_test_top1: float | None = None
    data_spec: dict[str, Any] | None = None
    rescored_from: str | None = None
    compare_wall_s: float | None = None
    compare_driver_peak_mb: float | None = None

    @classmethod
    def from_attrs(cls, attrs: dict[str, Any]) -> StudyInfo:
        """Read study user attributes (keys of other tools are ignored)."""
        known = {f.name for f in fields(cls)}
        values = {key: value for key, value in attrs.items() if key in known}
        if "objectives" in values:
            values["objectives"] = tuple(values["objectives"] or ())
        return cls(**values)

    @classmethod
    def of(cls, study: optuna.Study) -> StudyInfo:
        """The attributes of ``study``."""
        return cls.from_attrs(study.user_attrs)

    def attrs(self) -> dict[str, Any]:
        """As study user attributes: the identity always, every other field when set."""
        values = asdict(self)
        values["objectives"] = list(self.objectives)
        return {key: value for key, value in values.items() if key in IDENTITY or value is not None}

    def identity(self) -> dict[str, Any]:
        """The fields a resumed study must share with this one."""
        return {key: value for key, value in self.attrs().items() if key in IDENTITY}

    def with_(self, **changes: Any) -> StudyInfo:
        """A copy with ``changes``."""
        return replace(self, **changes)

    @property
    def profile(self) -> str:
        """The profile name of ``hw``."""
        return self.hw.partition(":")[0]

    @property
    def unit(self) -> str:
        """The unit name of ``hw``."""
        return self.hw.partition(":")[2]

    def write(self, study: optuna.Study) -> None:
        """Store every field of this record on ``study``."""
        for key, value in self.attrs().items():
            study.set_user_attr(key, value)
