"""Render the consent prompt texts to 8 kHz mono 16-bit WAV with espeak-ng + sox.

    python -m consent.generate_prompts TARGET_DIR [--language en --language zh]

Writes ``<target>/<lang>/<prompt_id>.wav`` atomically and ``<target>/manifest.json`` with
each prompt's version id (from prompts.yaml) and the SHA-256 of the audio.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import tempfile
from pathlib import Path

from consent.prompts import TEXTS_FILE, load_texts
from pbx_recorder.errors import RecorderError
from storage import file_modes


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            os.fchmod(handle.fileno(), file_modes.PUBLIC_FILE_MODE)  # Asterisk (another user) reads prompts
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def render(text: str, voice: str, timeout: float = 60.0) -> bytes:
    """espeak-ng -> WAV on stdout -> sox to 8 kHz mono 16-bit WAV bytes."""
    try:
        spoken = subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "--stdout", text],
                                capture_output=True, timeout=timeout, check=True).stdout
        with tempfile.TemporaryDirectory() as tmp:
            # sox writes a correct WAV header only to a seekable file, not to a pipe.
            out = Path(tmp) / "prompt.wav"
            subprocess.run(["sox", "-t", "wav", "-", "-r", "8000", "-c", "1", "-b", "16",
                            "-e", "signed-integer", str(out)], input=spoken,
                           capture_output=True, timeout=timeout, check=True)
            return out.read_bytes()
    except (OSError, subprocess.SubprocessError) as exc:
        raise RecorderError(f"prompt rendering failed ({voice}): {exc}") from exc


def generate(target: str | Path, languages: list[str] | None = None,
             texts_file: Path = TEXTS_FILE) -> dict:
    """Render every prompt for ``languages`` (default: all with a voice); return the manifest."""
    texts = load_texts(texts_file)
    voices: dict[str, str] = texts.get("voices", {})
    target = Path(target)
    manifest: dict[str, dict[str, dict[str, str]]] = {}
    for lang in languages or sorted(voices):
        if lang not in voices:
            raise RecorderError(f"no voice configured for language {lang!r}")
        missing = [p for p in reversed((target / lang).parents) if not p.exists()]
        for d in (*missing, target, target / lang):  # traversable by Asterisk whatever the umask
            d.mkdir(exist_ok=True)  # parents included: never the umask's 0777 above the prompts
            if d.stat().st_uid == os.geteuid():
                os.chmod(d, file_modes.PUBLIC_DIR_MODE)
        for prompt_id, entry in texts["prompts"].items():
            text = entry.get(lang)
            if not text:
                continue
            audio = render(str(text), voices[lang])
            _atomic_write(target / lang / f"{prompt_id}.wav", audio)
            manifest.setdefault(lang, {})[prompt_id] = {
                "version": str(entry["version"]), "file": f"{prompt_id}.wav", "voice": voices[lang],
                "sha256": hashlib.sha256(audio).hexdigest()}
    _atomic_write(target / "manifest.json", json.dumps(manifest, indent=2, sort_keys=True).encode())
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target")
    parser.add_argument("--language", action="append")
    args = parser.parse_args(argv)
    manifest = generate(args.target, args.language)
    print(f"{sum(len(v) for v in manifest.values())} prompts written to {args.target}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
