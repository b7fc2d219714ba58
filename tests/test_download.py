"""download: verified install from a mirror or a zip; nothing half-written is ever left behind."""
import hashlib
import http.server
import io
import os
import shutil
import ssl
import stat
import subprocess
import sys
import threading
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pytest

from conftest import link_tree, replace_file
from course_utils import download, settings

NAME = download.NAME


def manifest_files() -> list[str]:
    return [line.split(maxsplit=1)[1] for line in download.MANIFEST.read_text().splitlines()]


@pytest.fixture
def offline(monkeypatch):
    """No configured mirror: hymenoptera() must use the URL it is given."""
    monkeypatch.delenv("COURSE_DATA_MIRROR", raising=False)


@pytest.fixture(scope="session")
def good_zip(mirror_source, tmp_path_factory) -> Path:
    """The mirror's hymenoptera_data/ zipped like the official archive (top folder inside)."""
    path = tmp_path_factory.mktemp("zip") / "hymenoptera_data.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for file in sorted(mirror_source.rglob("*")):
            zf.write(file, file.relative_to(mirror_source.parent))
    return path


def assert_nothing_installed(data_dir: Path):
    """No dataset folder and no temporary folder are left in data_dir."""
    left = sorted(p.name for p in data_dir.iterdir()) if data_dir.exists() else []
    assert left == [], f"left behind in {data_dir}: {left}"


# --- the manifest ------------------------------------------------------------------------------

def test_manifest_matches_the_mirror_manifest(data_mirror):
    shipped = data_mirror / "hymenoptera_data.sha256"
    if not shipped.exists():
        pytest.skip("this mirror ships no manifest")
    assert sorted(download.MANIFEST.read_text().splitlines()) == sorted(shipped.read_text().splitlines())


def test_manifest_lists_both_splits_and_classes():
    files = manifest_files()
    assert len(files) == len(set(files)) > 300
    for split in ("train", "val"):
        for cls in ("ants", "bees"):
            assert any(f.startswith(f"{NAME}/{split}/{cls}/") for f in files)


def test_verify_reports_problems(mirror_source, tmp_path):
    root = link_tree(mirror_source, tmp_path / NAME)
    assert download.verify(root) == []
    files = manifest_files()
    (tmp_path / files[0]).unlink()
    replace_file(tmp_path / files[1], b"not the image")
    assert download.verify(root) == [f"missing {files[0]}", f"checksum mismatch {files[1]}"]


# --- installing from a mirror --------------------------------------------------------------------

def test_install_from_mirror_gives_verified_writable_copy(hymenoptera, hymenoptera_data_dir, mirror_source):
    assert hymenoptera == hymenoptera_data_dir / NAME
    assert (hymenoptera / download.DONE_MARKER).is_file()
    assert download.verify(hymenoptera) == []
    installed = {str(p.relative_to(hymenoptera_data_dir)) for p in hymenoptera.rglob("*") if p.is_file()}
    assert set(manifest_files()) <= installed
    assert installed - set(manifest_files()) == {f"{NAME}/{download.DONE_MARKER}"}
    for folder, _, _ in os.walk(hymenoptera):  # the mirror is read-only; the copy must not be
        assert stat.S_IMODE(os.stat(folder).st_mode) & stat.S_IWUSR, folder
    # nothing else next to it (no temporary folder left)
    assert [p.name for p in hymenoptera_data_dir.iterdir()] == [NAME]
    assert not os.path.samefile(hymenoptera, mirror_source)


def test_verified_copy_is_reused_without_copying(hymenoptera, hymenoptera_data_dir, capsys, tmp_path):
    # a mirror that does not exist: it must not even be looked at
    again = download.hymenoptera(data_dir=hymenoptera_data_dir, mirror=tmp_path / "nowhere", verbose=True)
    assert again == hymenoptera
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("use", ["environment", "argument-is-the-folder-itself"])
def test_mirror_from_environment_or_given_directly(monkeypatch, tmp_path, data_mirror, capsys, use):
    data_dir = tmp_path / "data"
    if use == "environment":
        monkeypatch.setenv("COURSE_DATA_MIRROR", str(data_mirror))
        root = download.hymenoptera(data_dir=data_dir, url="http://127.0.0.1:9/never.zip")
    else:
        monkeypatch.delenv("COURSE_DATA_MIRROR", raising=False)
        root = download.hymenoptera(data_dir=data_dir, mirror=data_mirror / NAME,
                                    url="http://127.0.0.1:9/never.zip")
    assert root == data_dir / NAME and (root / download.DONE_MARKER).is_file()
    out = capsys.readouterr().out
    assert "Copying" in out and "Downloading" not in out


@pytest.mark.parametrize("damage", ["altered", "missing"])
def test_mirror_failing_verification_installs_nothing(mirror_source, tmp_path, damage):
    mirror = tmp_path / "mirror"
    link_tree(mirror_source, mirror / NAME)
    rel = manifest_files()[5]
    victim = mirror / rel
    if damage == "altered":
        data = bytearray(victim.read_bytes())
        data[len(data) // 2] ^= 0x01  # one bit of one byte
        replace_file(victim, bytes(data))
    else:
        victim.unlink()
    data_dir = tmp_path / "data"
    with pytest.raises(download.DataUnavailable) as err:
        download.hymenoptera(data_dir=data_dir, mirror=mirror, verbose=False)
    message = str(err.value)
    assert rel in message
    assert ("checksum mismatch" if damage == "altered" else "missing") in message
    assert "nothing was installed" in message
    assert_nothing_installed(data_dir)


def test_mirror_without_train_folder(tmp_path):
    mirror = tmp_path / "mirror"
    (mirror / NAME / "val").mkdir(parents=True)
    with pytest.raises(download.DataUnavailable, match=r"holds no hymenoptera_data/train") as err:
        download.hymenoptera(data_dir=tmp_path / "data", mirror=mirror, verbose=False)
    assert "COURSE_DATA_MIRROR" in str(err.value)
    assert not (tmp_path / "data" / NAME).exists()


# --- a copy placed by hand -------------------------------------------------------------------------

def test_hand_placed_complete_copy_is_verified_and_accepted(mirror_source, tmp_path, capsys):
    data_dir = tmp_path / "data"
    target = link_tree(mirror_source, data_dir / NAME)
    assert not (target / download.DONE_MARKER).exists()
    # an unusable mirror proves the copy in place was used
    root = download.hymenoptera(data_dir=data_dir, mirror=tmp_path / "no-mirror", verbose=True)
    assert root == target
    assert (target / download.DONE_MARKER).is_file()
    assert capsys.readouterr().out == ""


def test_hand_placed_incomplete_copy_is_reported_and_kept(mirror_source, tmp_path):
    data_dir = tmp_path / "data"
    target = link_tree(mirror_source, data_dir / NAME)
    rel = manifest_files()[-1]
    (data_dir / rel).unlink()
    before = sorted(p.relative_to(target) for p in target.rglob("*"))
    with pytest.raises(download.DataUnavailable) as err:
        download.hymenoptera(data_dir=data_dir, mirror=tmp_path / "no-mirror", verbose=False)
    message = str(err.value)
    assert str(target) in message and "not a complete copy" in message and f"missing {rel}" in message
    assert sorted(p.relative_to(target) for p in target.rglob("*")) == before  # not deleted
    assert not (target / download.DONE_MARKER).exists()


# --- downloading -------------------------------------------------------------------------------------

def test_download_from_file_url_installs_verified_copy(offline, good_zip, tmp_path, capsys):
    data_dir = tmp_path / "data"
    root = download.hymenoptera(data_dir=data_dir, url=good_zip.as_uri())
    assert root == data_dir / NAME
    assert "Downloading" in capsys.readouterr().out
    assert (root / download.DONE_MARKER).is_file()
    assert download.verify(root) == []
    assert [p.name for p in data_dir.iterdir()] == [NAME]  # no temp folder, no zip left


def _assert_explains_manual_placement(message: str):
    assert "download" in message.lower() and "unzip" in message
    assert NAME in message and "COURSE_DATA_MIRROR" in message


def test_failed_download_explains_and_leaves_nothing(offline, tmp_path):
    data_dir = tmp_path / "data"
    url = "http://127.0.0.1:9/x.zip"  # loopback discard port: connection refused, no network
    with pytest.raises(download.DataUnavailable) as err:
        download.hymenoptera(data_dir=data_dir, url=url, verbose=False)
    assert url in str(err.value)
    _assert_explains_manual_placement(str(err.value))
    assert_nothing_installed(data_dir)


def _assert_download_fails_cleanly(url: str, data_dir: Path):
    with pytest.raises(download.DataUnavailable) as err:
        download.hymenoptera(data_dir=data_dir, url=url, verbose=False)
    _assert_explains_manual_placement(str(err.value))
    assert_nothing_installed(data_dir)


def test_truncated_zip_raises_data_unavailable_and_leaves_nothing(offline, good_zip, tmp_path):
    broken = tmp_path / "truncated.zip"
    with open(good_zip, "rb") as f:
        broken.write_bytes(f.read(good_zip.stat().st_size // 2))
    _assert_download_fails_cleanly(broken.as_uri(), tmp_path / "data")


@pytest.mark.parametrize("kind", ["garbage", "missing-file", "empty"])
def test_unusable_file_url_raises_data_unavailable_and_leaves_nothing(offline, tmp_path, kind):
    broken = tmp_path / f"{kind}.zip"
    if kind == "garbage":
        broken.write_bytes(b"this is no zip archive\n" * 100)
    elif kind == "empty":
        broken.write_bytes(b"")
    _assert_download_fails_cleanly(broken.as_uri(), tmp_path / "data")


def test_zip_with_corrupt_member_raises_data_unavailable(offline, tmp_path):
    """A download damaged in transit whose deflate stream is invalid. zipfile raises zlib.error
    (not BadZipFile) for it; the student must still get DataUnavailable with instructions."""
    archive = tmp_path / "corrupt.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"{NAME}/train/ants/a.txt", "ants " * 2000)
    data = bytearray(archive.read_bytes())
    with zipfile.ZipFile(archive) as zf:
        info = zf.infolist()[0]
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    data[start] = 0x07  # deflate block header: final block of reserved type 3 -> invalid
    archive.write_bytes(bytes(data))
    _assert_download_fails_cleanly(archive.as_uri(), tmp_path / "data")


def test_zip_with_wrong_content_fails_verification(offline, tmp_path):
    archive = tmp_path / "wrong.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(f"{NAME}/train/ants/a.jpg", b"not the dataset")
    data_dir = tmp_path / "data"
    with pytest.raises(download.DataUnavailable, match="does not match the course's checksums"):
        download.hymenoptera(data_dir=data_dir, url=archive.as_uri(), verbose=False)
    assert_nothing_installed(data_dir)


def test_failed_download_message_names_the_folder_in_use(offline, tmp_path):
    """The hand-placement instructions must name the data_dir this call uses, not the default."""
    data_dir = tmp_path / "my-data"
    assert data_dir != settings.data_dir()
    with pytest.raises(download.DataUnavailable) as err:
        download.hymenoptera(data_dir=data_dir, url="http://127.0.0.1:9/x.zip", verbose=False)
    assert str(data_dir / NAME) in str(err.value)


def test_concurrent_install_finished_first_by_another_process(monkeypatch, mirror_source, tmp_path):
    """Two kernels fetching at once (e.g. two notebooks opened on first use): the one that
    finishes second finds a verified copy in place and must use it, not crash."""
    data_dir, mirror = tmp_path / "data", tmp_path / "mirror"
    link_tree(mirror_source, mirror / NAME)
    target = data_dir / NAME
    real_copytree, raced = shutil.copytree, []

    def copy_while_another_process_wins(src, dst, *args, **kwargs):
        if not raced:  # the outermost call (copytree recurses through the module attribute)
            raced.append(True)
            real_copytree(src, target, *args, **kwargs)  # the other process installs first ...
            (target / download.DONE_MARKER).write_text("verified\n")
        return real_copytree(src, dst, *args, **kwargs)  # ... while this one is still copying

    monkeypatch.setattr(shutil, "copytree", copy_while_another_process_wins)
    root = download.hymenoptera(data_dir=data_dir, mirror=mirror, verbose=False)
    assert root == target and download.verify(root) == []
    assert [p.name for p in data_dir.iterdir()] == [NAME]


def test_sha256_of_known_bytes(tmp_path):
    path = tmp_path / "abc"
    path.write_bytes(b"abc")
    assert download.sha256(path) == hashlib.sha256(b"abc").hexdigest()
    big = tmp_path / "big"
    big.write_bytes(b"x" * (3 << 20))  # crosses the 1 MiB block boundary
    assert download.sha256(big) == hashlib.sha256(b"x" * (3 << 20)).hexdigest()


def test_the_mirror_itself_is_intact(mirror_source):
    """Guard for the tests above, which damage linked copies: the mirror still verifies."""
    assert download.verify(mirror_source) == []


# --- folders that can't be written, runs that were interrupted ------------------------------------

def test_read_only_data_dir_is_a_clear_error(mirror_source, tmp_path, monkeypatch):
    data_dir = tmp_path / "data"
    data_dir.mkdir()

    def refused(*args, **kwargs):  # what a read-only folder does (tests run as root, so chmod can't)
        raise PermissionError(13, "Permission denied", str(data_dir))
    monkeypatch.setattr(download.tempfile, "TemporaryDirectory", refused)
    with pytest.raises(download.DataUnavailable, match="Could not write .*Permission denied.*COURSE_DATA_DIR"):
        download.hymenoptera(data_dir=data_dir, mirror=mirror_source, verbose=False)
    assert_nothing_installed(data_dir)


def test_full_disk_during_the_copy_installs_nothing(mirror_source, tmp_path, monkeypatch):
    data_dir, copied = tmp_path / "data", []
    real_copyfile = shutil.copyfile

    def filling_up(src, dst, **kwargs):
        if len(copied) == 20:
            raise OSError(28, "No space left on device", str(dst))
        copied.append(dst)
        return real_copyfile(src, dst, **kwargs)
    monkeypatch.setattr(shutil, "copyfile", filling_up)
    with pytest.raises(download.DataUnavailable, match="No space left on device.*nothing was installed"):
        download.hymenoptera(data_dir=data_dir, mirror=mirror_source, verbose=False)
    assert_nothing_installed(data_dir)
    monkeypatch.setattr(shutil, "copyfile", real_copyfile)  # space freed: the next run installs it
    assert download.verify(download.hymenoptera(data_dir=data_dir, mirror=mirror_source, verbose=False)) == []


def test_leftovers_of_an_interrupted_run_are_ignored_then_cleaned(mirror_source, tmp_path):
    data_dir = tmp_path / "data"
    stale, fresh = data_dir / f".{NAME}-killed", data_dir / f".{NAME}-running"
    for leftover in (stale, fresh):  # half-extracted copies: a killed run's, and another process's
        (leftover / NAME / "train" / "ants").mkdir(parents=True)
    two_hours_ago = os.path.getmtime(stale) - 7200
    os.utime(stale, (two_hours_ago, two_hours_ago))
    root = download.hymenoptera(data_dir=data_dir, mirror=mirror_source, verbose=False)
    assert root == data_dir / NAME and download.verify(root) == []
    assert not stale.exists() and fresh.is_dir()  # a recent one may still be in use


def test_read_only_complete_copy_is_accepted_without_a_marker(mirror_source, tmp_path, monkeypatch):
    data_dir = tmp_path / "data"
    target = link_tree(mirror_source, data_dir / NAME)
    real_write_text = Path.write_text

    def read_only(self, *args, **kwargs):
        if self.name == download.DONE_MARKER:
            raise PermissionError(13, "Permission denied", str(self))
        return real_write_text(self, *args, **kwargs)
    monkeypatch.setattr(Path, "write_text", read_only)
    assert download.hymenoptera(data_dir=data_dir, mirror=tmp_path / "no-mirror", verbose=False) == target


# --- over real HTTP: a loopback server started by the test ---------------------------------------

@pytest.fixture
def small_dataset(tmp_path, monkeypatch) -> bytes:
    """A five-file hymenoptera_data/ zipped (one file of 600 kB, so the download has several
    progress lines), with the course's manifest replaced by one that lists exactly these files."""
    files = {f"{NAME}/{split}/{cls}/{i}.jpg": os.urandom(600_000 if (split, cls, i) == ("train", "ants", 0) else 300)
             for split in ("train", "val") for cls in ("ants", "bees") for i in range(1 + (split == "train"))}
    lines, buffer = [], io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as zf:
        for rel, data in files.items():
            zf.writestr(rel, data)
            lines.append(f"{hashlib.sha256(data).hexdigest()}  {rel}")
    manifest = tmp_path / "small.sha256"
    manifest.write_text("\n".join(lines) + "\n")
    monkeypatch.setattr(download, "MANIFEST", manifest)
    monkeypatch.delenv("COURSE_DATA_MIRROR", raising=False)
    return buffer.getvalue()


class _Handler(http.server.BaseHTTPRequestHandler):
    """/ok.zip the archive; /missing.zip 404; /dropped.zip half the archive, then the connection
    closes; /page.zip an HTML page with status 200 (a captive portal, a proxy's error page)."""

    def do_GET(self):
        body = self.server.body
        if self.path == "/missing.zip":
            self.send_error(404, "Not Found")
            return
        if self.path == "/page.zip":
            body = b"<html><body>Please log in to the network</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "application/zip" if self.path != "/page.zip" else "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[:len(body) // 2] if self.path == "/dropped.zip" else body)
        self.close_connection = True

    def log_message(self, *args):
        pass


def _serve(body: bytes, tls: ssl.SSLContext | None = None):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.body = body
    if tls:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, f"{'https' if tls else 'http'}://127.0.0.1:{server.server_port}"


@pytest.fixture
def http_server(small_dataset):
    server, base = _serve(small_dataset)
    yield base
    server.shutdown()
    server.server_close()


def test_http_download_installs_and_verifies_with_progress(http_server, tmp_path, capsys):
    data_dir = tmp_path / "data"
    root = download.hymenoptera(data_dir=data_dir, url=f"{http_server}/ok.zip")
    assert root == data_dir / NAME and (root / download.DONE_MARKER).is_file()
    assert download.verify(root) == []
    assert [p.name for p in data_dir.iterdir()] == [NAME]  # no temporary folder, no zip left
    progress = [line for line in capsys.readouterr().out.splitlines() if " MB (" in line]
    assert len(progress) >= 5 and progress[-1].endswith("(100%)"), progress


@pytest.mark.parametrize("path, says", [("missing.zip", "HTTP Error 404"),
                                        ("dropped.zip", "connection closed after"),
                                        ("page.zip", "not a zip file")])
def test_http_download_failures_explain_and_leave_nothing(http_server, tmp_path, path, says):
    data_dir = tmp_path / "data"
    with pytest.raises(download.DataUnavailable) as err:
        download.hymenoptera(data_dir=data_dir, url=f"{http_server}/{path}", verbose=False)
    message = str(err.value)
    assert says in message and f"{http_server}/{path}" in message, message
    _assert_explains_manual_placement(message)
    assert_nothing_installed(data_dir)
    # the next attempt, against a working server, installs normally
    assert download.verify(download.hymenoptera(data_dir=data_dir, url=f"{http_server}/ok.zip", verbose=False)) == []


def test_certificate_failure_is_named_with_its_fix():
    wrapped = urllib.error.URLError(ssl.SSLCertVerificationError(
        1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: unable to get local issuer certificate"))
    for err in (wrapped, wrapped.reason):
        hint = download.certificate_problem(err)
        assert "CERTIFICATE_VERIFY_FAILED" in hint and "Install Certificates.command" in hint
        assert "certifi" in hint and "SSL_CERT_FILE" in hint and "before starting Jupyter" in hint
    assert download.certificate_problem(urllib.error.URLError(ConnectionRefusedError(111, "refused"))) is None
    assert download.certificate_problem(OSError(28, "No space left on device")) is None


# Certificates as a real authority makes them (what Python 3.13's strict checks require): a CA
# with critical basic constraints, key usage for signing certificates and key identifiers, and a
# server certificate it signed, for 127.0.0.1 only. "no-key-usage" is the same CA without its key
# usage, as some TLS-inspecting proxies make theirs.
_OPENSSL_CONFIG = """\
[req]
distinguished_name = dn
[dn]
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[no-key-usage]
basicConstraints = critical, CA:TRUE
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
"""


def _authority(folder: Path, kind: str) -> tuple[Path, Path, Path]:
    """(CA certificate, server certificate, server key) made with openssl in `folder`."""
    folder.mkdir()
    config = folder / "openssl.cnf"
    config.write_text(_OPENSSL_CONFIG)
    ca, ca_key = folder / "ca.pem", folder / "ca.key"
    cert, key, request = folder / "server.pem", folder / "server.key", folder / "server.csr"
    new_key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for command in (
            ["req", "-x509", *new_key, "-days", "2", "-subj", "/CN=Course test CA", "-keyout", ca_key,
             "-out", ca, "-config", config, "-extensions", kind],
            ["req", "-new", *new_key, "-subj", "/CN=127.0.0.1", "-keyout", key, "-out", request,
             "-config", config],
            ["x509", "-req", "-in", request, "-CA", ca, "-CAkey", ca_key, "-days", "2",
             "-set_serial", str(int.from_bytes(os.urandom(8), "big")), "-extfile", config,
             "-extensions", "server", "-out", cert]):
        subprocess.run(["openssl", *map(str, command)], check=True, capture_output=True)
    return ca, cert, key


@pytest.fixture
def https_server(small_dataset, tmp_path):
    """Starts loopback HTTPS servers: https_server(kind) gives (base URL, the CA's certificate)
    for a server whose certificate a new test authority of that kind signed (no trust store
    knows it)."""
    if not shutil.which("openssl"):
        pytest.skip("openssl is needed to make the test's certificates")
    servers = []

    def start(kind: str) -> tuple[str, Path]:
        ca, cert, key = _authority(tmp_path / f"authority-{kind}", kind)
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(cert, key)
        server, base = _serve(small_dataset, tls)
        servers.append(server)
        return base, ca
    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _strict_context(ca: Path) -> ssl.SSLContext:
    """Python's default client context trusting only `ca`, with the strict checks that 3.13 and
    later make by default (so that 3.11 and 3.12 check the test's certificates the same way)."""
    context = ssl.create_default_context(cafile=ca)
    context.verify_flags |= ssl.VERIFY_X509_STRICT
    return context


def _download_in_a_new_python(url: str, data_dir: Path, ssl_cert_file: Path) -> subprocess.CompletedProcess:
    """hymenoptera() in a new Python started with SSL_CERT_FILE set, as the advice says (set it,
    then start Jupyter): since 3.13, a running Python keeps the certificates of its first HTTPS
    context, so setting the variable inside this test's process proves nothing there."""
    child = ("import sys; from pathlib import Path; from course_utils import download\n"
             "download.MANIFEST = Path(sys.argv[3])  # the small data set's, as in this test\n"
             "try:\n"
             "    root = download.hymenoptera(data_dir=Path(sys.argv[2]), url=sys.argv[1], verbose=False)\n"
             "except download.DataUnavailable as err:\n"
             "    sys.exit(str(err))\n"
             "print('verified' if download.verify(root) == [] else 'NOT VERIFIED')\n")
    # SSL_CERT_DIR at a folder without hashed names: the machine's own store is not looked in
    env = dict(os.environ, SSL_CERT_FILE=str(ssl_cert_file), SSL_CERT_DIR=str(ssl_cert_file.parent))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(download.__file__).parents[1]),
                                                      env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-c", child, url, str(data_dir), str(download.MANIFEST)],
                          env=env, capture_output=True, text=True, timeout=120)


def test_untrusted_certificate_gets_its_own_message_and_the_fix_works(https_server, small_dataset, tmp_path):
    base, ca = https_server("ca")
    data_dir = tmp_path / "data"
    with pytest.raises(download.DataUnavailable) as err:
        download.hymenoptera(data_dir=data_dir, url=f"{base}/ok.zip", verbose=False)
    message = str(err.value)
    assert "CERTIFICATE_VERIFY_FAILED" in message and "Install Certificates.command" in message
    assert "SSL_CERT_FILE" in message and f"unzip it into {data_dir}" in message
    assert "internet" not in message.lower()  # the network works: no "no internet" advice
    assert_nothing_installed(data_dir)
    # the certificates meet the strict checks of Python 3.13 and later, on this Python too
    with urllib.request.urlopen(f"{base}/ok.zip", context=_strict_context(ca)) as response:
        assert response.read() == small_dataset
    # ... the advice: SSL_CERT_FILE pointing at the network's authority, then start Python
    done = _download_in_a_new_python(f"{base}/ok.zip", data_dir, ca)
    assert done.returncode == 0 and done.stdout.strip() == "verified", done.stderr


def test_authority_without_key_usage_is_named_on_strict_pythons(https_server, tmp_path):
    """A TLS-inspecting proxy whose authority lacks key usage: pointing SSL_CERT_FILE at it works
    up to Python 3.12, and from 3.13 on is refused; the message then says why and what to do."""
    base, ca = https_server("no-key-usage")
    with pytest.raises(urllib.error.URLError) as refused:
        urllib.request.urlopen(f"{base}/ok.zip", context=_strict_context(ca))
    hint = download.certificate_problem(refused.value)
    assert "CA cert does not include key usage extension" in hint, hint
    assert "VERIFY_X509_STRICT" in hint and "Python 3.11 or 3.12" in hint
    assert "Install Certificates.command" not in hint  # the certificates were found: not that advice
    data_dir = tmp_path / "data"
    done = _download_in_a_new_python(f"{base}/ok.zip", data_dir, ca)
    if ssl.create_default_context().verify_flags & ssl.VERIFY_X509_STRICT:  # 3.13 and later
        assert done.returncode == 1 and "CA cert does not include key usage extension" in done.stderr
        assert f"unzip it into {data_dir}" in done.stderr, done.stderr
        assert_nothing_installed(data_dir)
    else:
        assert done.returncode == 0 and done.stdout.strip() == "verified", done.stderr
