"""Getting the ants-vs-bees (hymenoptera) data: from a local mirror or by download, verified.

The data lands in `<data_dir>/hymenoptera_data` only once every file matches the checksum
manifest shipped with the course (`hymenoptera_data.sha256`); it is first unpacked in a
temporary folder next to it and then renamed, so an interrupted download or extraction
never leaves a half-written dataset that later counts as present.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import ssl
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from pathlib import Path

from . import settings

URL = "https://download.pytorch.org/tutorial/hymenoptera_data.zip"
NAME = "hymenoptera_data"
MANIFEST = Path(__file__).with_name("hymenoptera_data.sha256")
DONE_MARKER = ".verified"


class DataUnavailable(RuntimeError):
    """The data could not be obtained; the message says how to place it by hand."""


def hymenoptera(data_dir: Path | None = None, mirror: Path | None = None,
                url: str = URL, verbose: bool = True) -> Path:
    """Return the root of the verified hymenoptera dataset, fetching it if needed.

    Order: an already verified copy in `data_dir`; a copy placed there by hand (verified now);
    the `mirror` folder (or COURSE_DATA_MIRROR); the official zip.
    """
    data_dir = Path(data_dir or settings.data_dir())
    target = data_dir / NAME
    if (target / DONE_MARKER).exists():
        return target
    if target.exists():  # placed by hand, or by an older run: check it, never delete it
        problems = verify(target)
        if problems:
            raise DataUnavailable(
                f"{target} exists but is not a complete copy of the dataset "
                f"({len(problems)} problem(s), e.g. {problems[0]}). Move it away and run again "
                f"to fetch a fresh copy, or replace it with the unzipped contents of {url}.")
        try:
            (target / DONE_MARKER).write_text("verified against hymenoptera_data.sha256\n")
        except OSError:  # a read-only copy (a lab's shared folder): fine, it is verified again next time
            pass
        return target

    mirror = mirror or settings.mirror()
    candidates = [Path(mirror)] if mirror else []
    for folder in candidates:
        source = folder / NAME if (folder / NAME).is_dir() else folder
        if not (source / "train").is_dir():
            raise DataUnavailable(f"The mirror {folder} holds no {NAME}/train folder. "
                                  f"Point COURSE_DATA_MIRROR at the folder that contains {NAME}/.")
        if verbose:
            print(f"Copying {NAME} from the local mirror {source}")
        # copyfile: take the bytes, not the mirror's read-only permissions
        return _install(lambda tmp: shutil.copytree(source, tmp / NAME, copy_function=shutil.copyfile,
                                                    ignore=shutil.ignore_patterns(DONE_MARKER)), target)

    if verbose:
        print(f"Downloading {url}")
    return _install(lambda tmp: _download_and_unzip(url, tmp, data_dir, verbose), target)


def _install(fill, target: Path) -> Path:
    """Fill a temporary folder, verify it, then move it into place in one rename.

    An interrupted run leaves at most a hidden temporary folder, never a `target` that looks
    complete; such leftovers older than an hour are removed here.
    """
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_leftovers(target.parent)
        return _fill_and_rename(fill, target)
    except DataUnavailable:
        raise
    except OSError as err:  # read-only folder, full disk, quota
        raise DataUnavailable(
            f"Could not write the dataset into {target.parent} ({err}); nothing was installed. Free "
            f"about 100 MB there, or set COURSE_DATA_DIR to a writable folder with space.") from err


def _remove_stale_leftovers(folder: Path, age_s: float = 3600) -> None:
    for leftover in folder.glob(f".{NAME}-*"):
        if leftover.is_dir() and time.time() - leftover.stat().st_mtime > age_s:
            shutil.rmtree(leftover, ignore_errors=True)


def _fill_and_rename(fill, target: Path) -> Path:
    with tempfile.TemporaryDirectory(prefix=f".{NAME}-", dir=target.parent) as tmp:
        tmp = Path(tmp)
        fill(tmp)
        problems = verify(tmp / NAME)
        if problems:
            raise DataUnavailable(
                f"The fetched data does not match the course's checksums ({len(problems)} "
                f"problem(s), e.g. {problems[0]}); nothing was installed. Try again, or place "
                f"the unzipped {NAME}/ folder in {target.parent} by hand.")
        for folder, _, _ in os.walk(tmp / NAME):
            os.chmod(folder, 0o755)
        (tmp / NAME / DONE_MARKER).write_text("verified against hymenoptera_data.sha256\n")
        try:
            os.replace(tmp / NAME, target)
        except OSError:  # another process (a second notebook) installed it meanwhile
            if not (target / DONE_MARKER).exists():
                raise
    return target


def _download_and_unzip(url: str, tmp: Path, data_dir: Path, verbose: bool = True) -> None:
    archive = tmp / "download.zip"
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(archive, "wb") as out:
            _copy_with_progress(response, out, verbose)
        with zipfile.ZipFile(archive) as zf:
            bad = zf.testzip()
            if bad:
                raise zipfile.BadZipFile(f"corrupt member {bad}")
            zf.extractall(tmp)
    except (OSError, zipfile.BadZipFile, zlib.error, EOFError, http.client.HTTPException) as err:
        if certificate_problem(err):
            raise DataUnavailable(
                f"Could not download {url}: {certificate_problem(err)} Or download that zip with a "
                f"browser and unzip it into {data_dir} (so that {data_dir / NAME}/train exists).") from err
        raise DataUnavailable(
            f"Could not download {url} ({err}). On a machine with internet, download that zip "
            f"and unzip it into {data_dir} (so that {data_dir / NAME}/train "
            f"exists), or set COURSE_DATA_MIRROR to a folder that holds {NAME}/. "
            f"`make fetch` does this for a whole lab.") from err


def _copy_with_progress(response, out, verbose: bool, block: int = 1 << 16) -> None:
    """Copy the response into `out`, printing a line at every tenth of the download (every
    5 MB when the server does not say the size)."""
    total = int(response.headers.get("Content-Length") or 0)
    step = max(total // 10, 1) if total else 5_000_000
    done, shown = 0, 0
    for chunk in iter(lambda: response.read(block), b""):
        out.write(chunk)
        done += len(chunk)
        if verbose and (done - shown >= step or done == total):
            shown = done
            of = f" of {total / 1e6:.1f} MB ({done / total:.0%})" if total else " MB"
            print(f"  {done / 1e6:.1f}{of}", flush=True)
    if total and done != total:  # http.client returns a short body without complaint
        raise ConnectionError(f"the connection closed after {done:,} of {total:,} bytes")


# OpenSSL's verification errors (x509_vfy.h) raised only by its strict checks, which Python
# 3.13 and later turn on by default (ssl.VERIFY_X509_STRICT): a certificate missing or misusing
# the extensions a conforming authority writes (basic constraints, key usage, key identifiers).
STRICT_ONLY_ERRORS = range(80, 95)


def certificate_problem(err: BaseException) -> str | None:
    """If `err` is a failed TLS certificate check (CERTIFICATE_VERIFY_FAILED, often a macOS
    Python without its certificates, or a network that inspects TLS), what happened and how to
    fix it; else None."""
    reason = getattr(err, "reason", None) if isinstance(err, urllib.error.URLError) else err
    if not (isinstance(reason, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(err)):
        return None
    if getattr(reason, "verify_code", None) in STRICT_ONLY_ERRORS:
        return (f"this Python rejected a certificate as incomplete (CERTIFICATE_VERIFY_FAILED: "
                f"{reason.verify_message}). Python 3.13 and later check certificates strictly "
                "(ssl.VERIFY_X509_STRICT): the certificate authority was found, but its certificates "
                "lack what a conforming authority writes (basic constraints, key usage, key "
                "identifiers). Typical of a network that inspects TLS: ask whoever runs it for a "
                "conforming certificate authority, or use Python 3.11 or 3.12.")
    return ("this Python could not verify the server's certificate (CERTIFICATE_VERIFY_FAILED): "
            "the connection works, but Python has no list of trusted certificate authorities. "
            "On macOS with Python from python.org, run \"Install Certificates.command\" in its folder "
            "under /Applications (e.g. /Applications/Python 3.11/), then restart the kernel. Elsewhere: "
            "`pip install certifi`, then set SSL_CERT_FILE to the path that `python -m certifi` prints "
            "before starting Jupyter. Behind a network that inspects TLS, point SSL_CERT_FILE at "
            "its certificate authority's file, also before starting Jupyter (a running kernel may "
            "keep the certificates it read first).")


def verify(root: Path) -> list[str]:
    """Compare the files under `root` with the manifest; return a list of problems (empty: ok)."""
    problems = []
    for line in MANIFEST.read_text().splitlines():
        digest, rel = line.split(maxsplit=1)
        path = root.parent / rel
        if not path.is_file():
            problems.append(f"missing {rel}")
        elif sha256(path) != digest:
            problems.append(f"checksum mismatch {rel}")
    return problems


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
