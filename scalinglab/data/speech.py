"""Spoken words synthesised by Debian's `espeak-ng`, with noise, as log-mel spectrograms (offline).

Hestness et al.'s speech domain (Deep Speech 2 on read English) in miniature: isolated words, the ten
digits plus 25 short command words (the Speech Commands set's kind), 35 classes.

Speakers: an espeak-ng *variant* (`!v/f3`, `klatt2`, `Storm`, ...: formant, pitch and voicing settings)
is a speaker; each utterance is spoken by a variant in one of eight English accents (`en-us+f3`). The
variants, sorted by name, are split by position: index % 10 == 3 -> dev, == 7 -> test, the rest train,
so dev and test voices are never heard in training (a speaker-disjoint split: the curve measures
generalisation to new voices, not memorised ones).

Audio: a fixed pool of `per_voice` utterances per variant (words balanced, accent, speed 130-230 wpm
and pitch 20-80 drawn per utterance from `seed`), made by parallel `espeak-ng` subprocesses, resampled
22.05 -> 16 kHz and cached on disk (the slow part: about 10k subprocesses). Examples are made from the
pool in NumPy, deterministically from `seed`: the pool in a seeded order (each utterance once before
any is reused), placed at a random offset in a 1 s clip, mixed with white, pink or babble noise (four
other utterances of the same split, so no training voice leaks into dev) at an SNR uniform in
[snr_min, snr_max] dB, with a random gain of -12..0 dB. Features: 32 log-mel bands, 25 ms windows every
20 ms (49 frames), standardised by the training pool's mean and standard deviation -> x (n, 32, 49).

Metric: word error rate. For isolated words WER is the classification error (one word per utterance:
a wrong word is one substitution, WER = substitutions / words), so the study's error rate is the WER;
random guessing scores 1 - 1/35.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

import numpy as np

from scalinglab.data.registry import Dataset, cache_dir, register

DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
COMMANDS = (
    "yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "forward", "backward", "follow",
    "learn", "bed", "bird", "cat", "dog", "happy", "house", "tree", "wow", "visual", "marvin", "sheila",
)  # fmt: skip
WORDS = DIGITS + COMMANDS
# espeak-ng's own English voices (the mbrola ones need extra packages): the accents a variant speaks in
ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029", "en-us-nyc")
RATE = 16000
CLIP = RATE  # 1 s
WIN, HOP, NFFT, NMELS = 400, 320, 512, 32  # 25 ms windows every 20 ms -> 49 frames
NOISES = ("white", "pink", "babble")

DEFAULTS = {
    "n_train": 8192,
    "n_dev": 1024,
    "n_test": 1024,
    "per_voice": 104,  # pool utterances per variant (~80 train variants x 104 = 8.3k unique train utterances)
    "max_voices": 0,  # 0: every variant espeak-ng has; k: the first k by name (smoke runs)
    "snr_min": 0.0,
    "snr_max": 20.0,
    "seed": 0,
}


def _need_espeak() -> str:
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise ValueError(
            "speech: the Debian package espeak-ng is not installed (no `espeak-ng` on PATH); "
            "install it with `apt-get install espeak-ng` or scripts/setup.sh"
        )
    return exe


@lru_cache(maxsize=1)
def espeak_version() -> str:
    return subprocess.run([_need_espeak(), "--version"], capture_output=True, text=True, check=True).stdout.strip()


@lru_cache(maxsize=1)
def all_variants() -> tuple[str, ...]:
    """espeak-ng's voice variants (`!v/...` files), sorted; names with spaces are left out (`-v` takes one word)."""
    out = subprocess.run([_need_espeak(), "--voices=variant"], capture_output=True, text=True, check=True).stdout
    names = {m.group(1).strip() for m in re.finditer(r"!v/(\S[^\n]*?)\s*$", out, re.M)}
    return tuple(sorted(n for n in names if " " not in n))


def split_voices(variants, max_voices: int = 0) -> dict[str, list[str]]:
    """{"train", "dev", "test"}: variants by sorted position (index % 10: 3 -> dev, 7 -> test)."""
    vs = sorted(variants)[: max_voices or None]
    parts = {"train": [], "dev": [], "test": []}
    for i, v in enumerate(vs):
        parts[{3: "dev", 7: "test"}.get(i % 10, "train")].append(v)
    if not parts["dev"] or not parts["test"]:
        raise ValueError(f"speech: max_voices {max_voices} leaves no dev or test voice; allowed: 0 or at least 8")
    return parts


def _parse_wav(raw: bytes) -> tuple[np.ndarray, int]:
    """espeak-ng --stdout: a 44-byte PCM header (its size fields are placeholders) then int16 mono."""
    if raw[:4] != b"RIFF" or raw[36:40] != b"data":
        raise RuntimeError("speech: espeak-ng --stdout did not write a PCM WAV")
    rate = int.from_bytes(raw[24:28], "little")
    return np.frombuffer(raw[44 : 44 + (len(raw) - 44) // 2 * 2], dtype="<i2").astype(np.float32) / 32768, rate


def _speak(job: tuple[str, str, int, int]) -> np.ndarray:
    """One utterance: (word, voice, speed, pitch) -> float32 audio at 16 kHz."""
    from scipy.signal import resample_poly

    word, voice, speed, pitch = job
    raw = subprocess.run(
        [_need_espeak(), "-v", voice, "-s", str(speed), "-p", str(pitch), "--stdout", word],
        capture_output=True,
        check=True,
    ).stdout
    a, rate = _parse_wav(raw)
    g = math.gcd(RATE, rate)
    return resample_poly(a, RATE // g, rate // g).astype(np.float32)


def _jobs(voices: list[str], per_voice: int, seed: int) -> list[tuple]:
    """Per variant: words balanced (each word per_voice/35 times, in a shuffled order), accent, speed
    and pitch drawn; a per-variant stream (seeded by name) so one variant's utterances do not depend on
    which other variants are present."""
    jobs = []
    for v in voices:
        rng = np.random.default_rng([seed, int(hashlib.sha256(v.encode()).hexdigest()[:8], 16)])
        words = rng.permutation(np.resize(np.arange(len(WORDS)), per_voice))
        for w in words:
            accent = ACCENTS[rng.integers(len(ACCENTS))]
            jobs.append((WORDS[w], f"{accent}+{v}", int(rng.integers(130, 231)), int(rng.integers(20, 81)), int(w)))
    return jobs


def utterance_pool(voices: list[str], per_voice: int, seed: int) -> dict[str, np.ndarray]:
    """{"audio": float32 concatenated, "offsets": int64 (n+1,), "word": int64 (n,), "voice": int64 (n,)
    (index into `voices`)}; cached on disk keyed by the variants, per_voice, seed and espeak-ng version."""
    key = json.dumps({"v": voices, "k": per_voice, "s": seed, "e": espeak_version(), "w": WORDS}, sort_keys=True)
    path = cache_dir() / f"speech-pool-{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz"
    if path.exists():
        try:
            with np.load(path) as z:
                return {k: z[k] for k in ("audio", "offsets", "word", "voice")}
        except Exception:  # a torn file from a killed run: regenerate
            pass
    jobs = _jobs(voices, per_voice, seed)
    # Threads only wait on the subprocesses, which run in parallel on every core.
    with ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1)) as ex:
        clips = list(ex.map(lambda j: _speak(j[:4]), jobs))
    pool = {
        "audio": np.concatenate(clips),
        "offsets": np.concatenate([[0], np.cumsum([len(c) for c in clips])]).astype(np.int64),
        "word": np.array([j[4] for j in jobs], dtype=np.int64),
        "voice": np.repeat(np.arange(len(voices)), per_voice).astype(np.int64),
    }
    try:  # the cache only saves time
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(tmp, **pool)
        os.replace(tmp, path)
    except OSError:
        pass
    return pool


def _clip(a: np.ndarray, rng) -> np.ndarray:
    """`a` at a random offset in a 1 s clip (cropped around its middle when longer)."""
    out = np.zeros(CLIP, np.float32)
    if len(a) >= CLIP:
        s = (len(a) - CLIP) // 2
        out[:] = a[s : s + CLIP]
    else:
        o = int(rng.integers(0, CLIP - len(a) + 1))
        out[o : o + len(a)] = a
    return out


def _noise(kind: str, pool_clips, rng) -> np.ndarray:
    if kind == "white":
        return rng.standard_normal(CLIP).astype(np.float32)
    if kind == "pink":  # 1/f power: white noise shaped by 1/sqrt(f) in the frequency domain
        f = np.fft.rfft(rng.standard_normal(CLIP))
        f[1:] /= np.sqrt(np.arange(1, len(f)))
        f[0] = 0
        return np.fft.irfft(f, CLIP).astype(np.float32)
    # babble: four other utterances of this split (with replacement only in a pool of fewer than four)
    picks = rng.choice(len(pool_clips), 4, replace=len(pool_clips) < 4)
    return np.sum([_clip(pool_clips[i], rng) for i in picks], axis=0)


def mix(speech: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """speech + noise scaled so that speech power / noise power = snr_db (speech power over its
    non-silent samples, so a short word is not penalised by the silence around it)."""
    ps = float(np.mean(speech[np.abs(speech) > 1e-4] ** 2)) if np.any(np.abs(speech) > 1e-4) else 1e-8
    pn = float(np.mean(noise**2)) or 1e-8
    return speech + noise * math.sqrt(ps / (pn * 10 ** (snr_db / 10)))


@lru_cache(maxsize=1)
def mel_filters() -> np.ndarray:
    """(NFFT//2+1, NMELS) triangular filters on the HTK mel scale, 20 Hz .. 8 kHz."""
    mel = lambda f: 2595 * np.log10(1 + f / 700)  # noqa: E731
    imel = lambda m: 700 * (10 ** (m / 2595) - 1)  # noqa: E731
    edges = imel(np.linspace(mel(20), mel(RATE / 2), NMELS + 2))
    freqs = np.linspace(0, RATE / 2, NFFT // 2 + 1)
    fb = np.zeros((len(freqs), NMELS), np.float32)
    for m in range(NMELS):
        lo, c, hi = edges[m : m + 3]
        fb[:, m] = np.clip(np.minimum((freqs - lo) / (c - lo), (hi - freqs) / (hi - c)), 0, None)
    return fb


def log_mel(clips: np.ndarray) -> np.ndarray:
    """(n, 16000) audio -> (n, NMELS, frames) log-mel power, in chunks (the spectra of 10k clips are 1 GB)."""
    frames = 1 + (CLIP - WIN) // HOP
    idx = np.arange(WIN)[None, :] + HOP * np.arange(frames)[:, None]
    win = np.hanning(WIN).astype(np.float32)
    out = np.empty((len(clips), NMELS, frames), np.float32)
    for i in range(0, len(clips), 512):
        spec = np.abs(np.fft.rfft(clips[i : i + 512][:, idx] * win, NFFT)) ** 2  # (b, frames, bins)
        out[i : i + 512] = np.log(spec @ mel_filters() + 1e-6).transpose(0, 2, 1)
    return out


def examples(pool: dict, voices_in: np.ndarray, n: int, snr: tuple[float, float], rng) -> tuple:
    """n examples from the pool's utterances of the voices `voices_in`: (audio (n, 16000), word (n,))."""
    ids = np.flatnonzero(np.isin(pool["voice"], voices_in))
    clips = [pool["audio"][pool["offsets"][i] : pool["offsets"][i + 1]] for i in ids]
    order = np.concatenate([rng.permutation(len(ids)) for _ in range(math.ceil(n / len(ids)))])[:n]
    out = np.empty((n, CLIP), np.float32)
    for j, k in enumerate(order):
        s = _clip(clips[k], rng)
        noisy = mix(s, _noise(NOISES[rng.integers(3)], clips, rng), rng.uniform(*snr))
        out[j] = noisy * 10 ** (rng.uniform(-12, 0) / 20)
    return out, pool["word"][ids[order]]


def _pool_size(n_train, max_voices, snr_min, snr_max, **_):
    _need_espeak()  # the study fails at load time, naming the package, before anything is written
    split_voices(all_variants(), max_voices)
    if snr_min > snr_max:
        raise ValueError(f"speech: snr_min {snr_min} > snr_max {snr_max}; allowed: snr_min <= snr_max")
    return n_train


@register(
    "speech",
    defaults=DEFAULTS,
    pool_size=_pool_size,
    doc="spoken words (10 digits + 25 commands) by espeak-ng voices, noisy, log-mel; dev voices unseen; metric: WER",
)
def make_speech(n_train, n_dev, n_test, per_voice, max_voices, snr_min, snr_max, seed) -> Dataset:
    parts = split_voices(all_variants(), max_voices)
    voices = parts["train"] + parts["dev"] + parts["test"]
    pool = utterance_pool(voices, per_voice, seed)
    nt, nd = len(parts["train"]), len(parts["dev"])
    where = {"train": np.arange(nt), "dev": np.arange(nt, nt + nd), "test": np.arange(nt + nd, len(voices))}
    rng = np.random.default_rng([seed, 1])  # augmentation: one stream, splits in a fixed order
    xs, ys = {}, {}
    for part, n in (("train", n_train), ("dev", n_dev), ("test", n_test)):
        audio, ys[part] = examples(pool, where[part], n, (snr_min, snr_max), rng)
        xs[part] = log_mel(audio)
    mu, sd = float(xs["train"].mean()), float(xs["train"].std()) or 1.0  # training statistics only
    x = {k: ((v - mu) / sd).astype(np.float32) for k, v in xs.items()}
    return Dataset(
        x["train"],
        ys["train"],
        x["dev"],
        ys["dev"],
        x["test"],
        ys["test"],
        n_classes=len(WORDS),
        meta={
            "metric_name": "WER",
            "source": f"{espeak_version()}; {len(voices)} variants x {len(ACCENTS)} English accents",
            "words": list(WORDS),
            "voices": parts,
            "unique_utterances": {k: len(v) * per_voice for k, v in parts.items()},
            "features": f"{NMELS} log-mel bands x {x['train'].shape[2]} frames (25 ms / 20 ms), 16 kHz",
            "wer": "single words: WER = classification error",
        },
    )
