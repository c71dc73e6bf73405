"""`search train`: train (or resume, or reuse) the uncompressed baseline of a model on a data set."""

from __future__ import annotations

import argparse

from search.cli.common import make_console

AUGMENTATIONS = ("crop", "flip")  # --augment's names: the training recipe's switches of the same names


def cmd_train(args: argparse.Namespace) -> int:
    """search train: the baseline by the standard recipe, cached in RUN_DIR/baselines, resumable after a kill."""
    from core.errors import UserError, check_at_least
    from search.driver.train import TrainConfig, run_train

    check_at_least("--epochs", args.epochs, 1)
    check_at_least("--batch-size", args.batch_size, 2)
    if args.lr is not None and not args.lr > 0:
        raise UserError(f"--lr {args.lr} must be above 0")
    for flag in ("--weight-decay", "--label-smoothing", "--ema-decay", "--warmup"):
        value = getattr(args, flag[2:].replace("-", "_"))
        check_at_least(flag, value, 0.0)
        if value >= (1.01 if flag == "--warmup" else 1.0):
            raise UserError(f"{flag} {value} must be below 1")
    changes = dict(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        warmup=args.warmup,
        label_smoothing=args.label_smoothing,
        ema_decay=args.ema_decay,
        **augmentations(args.augment),
    )
    config = TrainConfig(args.model, args.data, args.input_size, args.train_size or None, args.seed, args.run_dir,
                         args.device, changes)  # fmt: skip
    return run_train(config, make_console())


def augmentations(given: str) -> dict[str, bool]:
    """``--augment``'s comma-separated names as the recipe's switches (every one off when ``given`` is empty)."""
    from core.errors import UserError

    names = {name.strip() for name in given.split(",") if name.strip()}
    unknown = sorted(names - set(AUGMENTATIONS))
    if unknown:
        raise UserError(f"--augment: '{unknown[0]}' is not one of {', '.join(AUGMENTATIONS)}")
    return {name: name in names for name in AUGMENTATIONS}


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """`search train`."""
    from search.config import RunConfig
    from search.data import data_usage
    from spaces.finetune import DEPTHWISE_LR, TrainRecipe

    d, r = RunConfig(), TrainRecipe()
    p = sub.add_parser(
        "train",
        help="train the uncompressed baseline of a model once (standard recipe, cached, resumable) for run and compare",
    )
    p.add_argument("--model", required=True, help="small_cnn, hl_cnn, any timm model, torchvision:NAME")
    p.add_argument("--data", default=d.data, help=f"data set: {data_usage()} (default: {d.data})")
    p.add_argument("--input-size", type=int, help="input resolution (default: the data set's)")
    p.add_argument("--train-size", type=int, help="train on a seeded subset of this many images (default: all)")
    p.add_argument("--seed", type=int, default=d.seed, help="seed of the data split, initial weights and batches (default: 0)")
    p.add_argument("--run-dir", default=d.run_dir, help="the baseline is cached in RUN_DIR/baselines (default: runs)")
    p.add_argument("--device", default=d.device, help="auto (the default: CUDA where torch sees a GPU), cpu or cuda")
    p.add_argument("--epochs", type=int, default=r.epochs, help=f"passes over the train split (default: {r.epochs})")
    p.add_argument(
        "--batch-size",
        type=int,
        help=f"images per step (default: {r.batch_size}, less for a train split of fewer than {32 * r.batch_size} images)",
    )
    p.add_argument(
        "--lr",
        type=float,
        help=f"peak AdamW learning rate (default: {DEPTHWISE_LR:g} for networks with depthwise convolutions, else {r.lr:g})",
    )
    p.add_argument("--weight-decay", type=float, default=r.weight_decay, help=f"AdamW weight decay (default: {r.weight_decay})")
    p.add_argument(
        "--warmup", type=float, default=r.warmup, help=f"share of the steps with a rising learning rate (default: {r.warmup})"
    )
    p.add_argument("--label-smoothing", type=float, default=r.label_smoothing, help=f"(default: {r.label_smoothing})")
    p.add_argument(
        "--ema-decay",
        type=float,
        default=r.ema_decay,
        help=f"weight average (0: none); it ships if better on validation (default: {r.ema_decay})",
    )
    p.add_argument(
        "--augment",
        nargs="?",
        const=",".join(AUGMENTATIONS),
        default="",
        metavar="crop,flip",
        help="random crops and mirror flips (flips only where the data's classes allow them); "
        "`--augment flip` or `--augment crop` for one of them (default: none)",
    )
    p.set_defaults(func=cmd_train)
