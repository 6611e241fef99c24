"""Where the native dev stack lives: everything under ``<repo>/.devstack/``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Layout:
    """Every path the dev stack reads or writes, derived from one root."""

    root: Path

    @property
    def bin_dir(self) -> Path:
        return self.root / "bin"

    @property
    def opensearch_lib(self) -> Path:
        return self.root / "opensearch" / "lib"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def run(self) -> Path:
        return self.root / "run"

    def data(self, service: str) -> Path:
        return self.root / "data" / service

    @property
    def supervisord_conf(self) -> Path:
        return self.root / "supervisord.conf"

    @property
    def supervisord_pid(self) -> Path:
        return self.root / "supervisord.pid"

    @property
    def supervisord_sock(self) -> Path:
        return self.root / "supervisord.sock"

    @property
    def services_env(self) -> Path:
        return self.root / "services.env"

    @property
    def app_programs(self) -> Path:
        """The app programs (api, worker) last asked for, kept across ``up`` calls."""
        return self.root / "app-programs.json"

    @property
    def opensearch_config(self) -> Path:
        # The runner keeps one config dir per node: <basePath>/node_<n>/config.
        return self.data("opensearch") / "node_1" / "config"


LAYOUT = Layout(REPO_ROOT / ".devstack")
OPENSEARCH_POM = REPO_ROOT / "devstack" / "opensearch" / "pom.xml"
OPENSEARCH_LAUNCHER = REPO_ROOT / "devstack" / "opensearch" / "DevstackOpenSearch.java"
