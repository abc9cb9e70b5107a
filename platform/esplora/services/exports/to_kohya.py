"""kohya-ss sd-scripts folders: ``{split}/{repeats}_{name}/KEY.ext`` + ``KEY.txt`` captions, and a
``dataset_config.toml`` for ``train_network.py --dataset_config``.

kohya reads the repeat count from the folder name; the caption files carry the training text
(trigger first, kept in place by ``keep_tokens`` when captions are shuffled). The TOML names the
image folders by absolute path, because sd-scripts resolves them from its working directory;
it is written by hand (the standard library reads TOML but cannot write it).
"""

from __future__ import annotations

from typing import Any

from esplora.services.exports.common import ExportItem, FormatSpec, WriteTarget, safe_name


class KohyaWriter:
    """Writes image + caption pairs per split, then ``dataset_config.toml``."""

    def __init__(self, target: WriteTarget) -> None:
        self.target = target
        options = target.options
        self.folder_name = f"{options.repeats}_{safe_name(options.trigger or target.snapshot)}"
        self.splits: set[str] = set()

    def write(self, item: ExportItem) -> None:
        folder = self.target.root / item.split / self.folder_name
        if item.split not in self.splits:
            folder.mkdir(parents=True, exist_ok=True)
            self.splits.add(item.split)
        self.target.files.write(folder / item.file_name, item.image)
        self.target.files.write(folder / f"{item.key}.txt", (item.text + "\n").encode())

    def close(self) -> dict[str, Any]:
        config = dataset_config(self.target, self.folder_name, sorted(self.splits))
        (self.target.root / "dataset_config.toml").write_text(config, encoding="utf-8")
        return {"folders": [f"{split}/{self.folder_name}" for split in sorted(self.splits)]}


def dataset_config(target: WriteTarget, folder_name: str, splits: list[str]) -> str:
    """sd-scripts' dataset config: the train folder as one subset (validation held out)."""
    options = target.options
    lines = [
        f"# sd-scripts dataset config for snapshot {target.snapshot} (written by esplora)",
        "# train_network.py --dataset_config dataset_config.toml",
        "",
        "[general]",
        'caption_extension = ".txt"',
        "shuffle_caption = false",
        f"keep_tokens = {1 if options.trigger else 0}",
        "",
        "[[datasets]]",
        f"resolution = {options.resolution}",
        "batch_size = 1",
        "enable_bucket = true",
        "",
    ]
    if "train" in splits:
        lines += [
            "  [[datasets.subsets]]",
            f"  image_dir = {toml_string(str(target.final / 'train' / folder_name))}",
            f"  num_repeats = {options.repeats}",
        ]
        if options.trigger:
            lines.append(f"  class_tokens = {toml_string(options.trigger.strip())}")
    if "validation" in splits:
        held_out = target.final / "validation" / folder_name
        lines += ["", f"# held-out validation images (not trained on): {held_out}"]
    return "\n".join(lines) + "\n"


def toml_string(text: str) -> str:
    """A TOML basic string: quotes, backslashes and control characters escaped."""
    escaped = []
    for char in text:
        if char in ('"', "\\"):
            escaped.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            escaped.append(f"\\u{ord(char):04X}")
        else:
            escaped.append(char)
    return '"' + "".join(escaped) + '"'


SPEC = FormatSpec(
    name="kohya",
    summary="kohya-ss sd-scripts: {repeats}_{name} folders of images + .txt captions, "
    "dataset_config.toml",
    layout="dataset_config.toml, train/1_NAME/KEY.jpg + KEY.txt, validation/1_NAME/…",
    usage=(
        "```bash\naccelerate launch train_network.py --dataset_config {out}/dataset_config.toml "
        "\\\n  --network_module networks.lora --output_dir out …\n```"
    ),
    jpeg_only=False,
    open=KohyaWriter,
)
