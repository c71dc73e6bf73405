"""The study database: storage URLs, opened (created on demand, or only if it exists) and shown without a password."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import UserError
from search.study.reruns import grace_period, rerun_interrupted

if TYPE_CHECKING:
    import optuna


def default_storage(run_dir: Path) -> str:
    """SQLite file in the run folder."""
    return f"sqlite:///{(run_dir / 'studies.db').resolve()}"


def redact(url: str) -> str:
    """``url`` with any password hidden (SQLAlchemy's rendering; a URL it cannot parse gets ``user:***@`` by hand)."""
    import re

    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 (a URL that does not parse: mask whatever stands where a password would)
        return re.sub(r"(://[^:/@]*):[^@]*@", r"\1:***@", url)


def check_storage(url: str) -> None:
    """Fail with one line if ``url`` cannot be an Optuna storage, without creating anything."""
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    hint = "use sqlite:///PATH.db or postgresql://USER:PASSWORD@HOST/DB"
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise UserError(f"storage URL '{redact(url)}' is malformed: {hint}") from None
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:"):
            raise UserError(f"storage URL '{url}' names no file: a study must outlive the run; {hint}")
        if not Path(database).parent.is_dir():
            raise UserError(f"storage URL '{url}': folder '{Path(database).parent}' does not exist: create it or {hint}")
        if Path(database).is_file() and Path(database).stat().st_size:
            with Path(database).open("rb") as f:
                if f.read(16) != b"SQLite format 3\x00":
                    raise UserError(f"'{database}' is not an SQLite database: pass another --storage or --run-dir")
        return
    try:
        engine = create_engine(url)
        with engine.connect():
            pass
        engine.dispose()
    except Exception as exc:  # noqa: BLE001 (drivers raise many types)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(
            f"cannot open storage '{redact(url)}' ({first[:160]}): check the URL and that the server is running"
        ) from None


def quiet_optuna() -> None:
    """Keep Optuna's per-trial log lines and experimental-API warnings off the terminal."""
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    # the trial loop records heartbeats itself (ask/tell), see search.driver.loop
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")


def open_storage(url: str, heartbeat_s: int | None = None, create: bool = True) -> optuna.storages.BaseStorage:
    """An Optuna RDB storage for ``url`` (checked first with :func:`check_storage`).

    With ``create`` False, Optuna's tables are not created (the caller checked they exist).

    With ``heartbeat_s``, running trials carry a heartbeat; a trial whose
    heartbeat is older than three intervals (its driver was killed) is failed
    and queued again by :func:`rerun_interrupted`.
    """
    import optuna

    quiet_optuna()
    check_storage(url)
    heartbeats: dict[str, Any] = {}
    if heartbeat_s is not None:
        heartbeats = dict(
            heartbeat_interval=heartbeat_s,
            grace_period=grace_period(heartbeat_s),
            heartbeat_stale_trial_callback=rerun_interrupted,
        )
    return optuna.storages.RDBStorage(url, skip_table_creation=not create, **heartbeats)


def find_study(storage: optuna.storages.BaseStorage, name: str) -> optuna.Study | None:
    """The study called ``name`` in ``storage``, if it exists."""
    import optuna

    if name not in {s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)}:
        return None
    return optuna.load_study(study_name=name, storage=storage)


def open_existing_storage(url: str) -> optuna.storages.BaseStorage:
    """The storage at ``url``, opened without creating anything: it must already hold an Optuna study database."""
    from sqlalchemy import create_engine, inspect
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import DatabaseError

    check_storage(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and not Path(parsed.database or "").is_file():
        raise UserError(f"no study database at '{url}': run `search run` first or pass --storage URL of an existing one")
    engine = create_engine(url)
    try:
        tables = set(inspect(engine).get_table_names())
    except DatabaseError:
        raise UserError(f"'{redact(url)}' is not a database: pass the --storage URL that `search run` used") from None
    finally:
        engine.dispose()
    if not {"studies", "trials", "version_info"} <= tables:
        raise UserError(f"'{redact(url)}' holds no Optuna study database: pass the --storage URL that `search run` used")
    return open_storage(url, create=False)


def load_existing_study(storage: optuna.storages.BaseStorage, name: str) -> optuna.Study:
    """The study ``name``; a one-line error listing the storage's studies if it is not there."""
    import optuna

    study = find_study(storage, name)
    if study is None:
        names = [s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)]
        raise UserError(f"no study '{name}' in this storage; its studies: {', '.join(names) or 'none'} (see `search studies`)")
    return study


def swap_study(storage: optuna.storages.BaseStorage, built: optuna.Study, name: str) -> optuna.Study:
    """Give study ``built`` the name ``name``, deleting the study of that name (if any) in the same database
    transaction: a reader, or a kill at any moment, sees the old study or the new one, never neither.

    Optuna has no rename; this writes its RDB tables (``studies.study_name``) through its own session.
    """
    import optuna
    from optuna.storages._rdb import models

    backend: Any = getattr(storage, "_backend", storage)  # the RDBStorage under Optuna's in-process cache
    session = backend.scoped_session()
    try:
        old = models.StudyModel.find_by_name(name, session)
        if old is not None:
            session.delete(old)
            session.flush()  # the old name is free before the new study takes it
        new = models.StudyModel.find_or_raise_by_id(built._study_id, session)
        new.study_name = name
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
    return optuna.load_study(study_name=name, storage=storage)
