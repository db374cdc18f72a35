"""Separate "hosts" for workers: network namespaces on a bridge the test makes.

    root namespace: bridge hl-<id> 10.201.N.1/24 (PostgreSQL forwarder, sink)
      ├── veth ── namespace hl-<id>-a: eth0 10.201.N.2/24, lo
      └── veth ── namespace hl-<id>-b: eth0 10.201.N.3/24, lo

Each namespace has its own interfaces and addresses; a worker inside reaches PostgreSQL
and the webhook endpoint only over the bridge, as a worker on another machine would over
the LAN. Only interfaces and addresses made here are touched, and all of them go away at
the end (deleting a namespace deletes its veth pair).
"""

from __future__ import annotations

import secrets
import subprocess
from dataclasses import dataclass, field


@dataclass
class Lan:
    sudo: list[str]
    tag: str = field(default_factory=lambda: secrets.token_hex(3))
    subnet: int = field(default_factory=lambda: 64 + secrets.randbelow(128))
    namespaces: list[str] = field(default_factory=list)

    @property
    def bridge(self) -> str:
        return f"hl-{self.tag}"

    @property
    def gateway(self) -> str:
        """The root namespace's address on the bridge: where the hosts find the services."""
        return f"10.201.{self.subnet}.1"

    def address(self, index: int) -> str:
        return f"10.201.{self.subnet}.{index + 2}"

    def _ip(self, *args: str) -> None:
        subprocess.run([*self.sudo, "ip", *args], check=True, capture_output=True, timeout=30)

    def up(self, hosts: int) -> Lan:
        self._ip("link", "add", self.bridge, "type", "bridge")
        self._ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        self._ip("link", "set", self.bridge, "up")
        for index in range(hosts):
            ns = f"hl-{self.tag}-{chr(ord('a') + index)}"
            self._ip("netns", "add", ns)
            self.namespaces.append(ns)
            veth = f"hlv-{self.tag}{index}"
            self._ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
            self._ip("link", "set", veth, "master", self.bridge, "up")
            self._ip("-n", ns, "addr", "add", f"{self.address(index)}/24", "dev", "eth0")
            self._ip("-n", ns, "link", "set", "eth0", "up")
            self._ip("-n", ns, "link", "set", "lo", "up")
        return self

    def link(self, index: int, state: str) -> None:
        """Unplug (``down``) or plug back (``up``) one host's cable."""
        self._ip("-n", self.namespaces[index], "link", "set", "eth0", state)

    def down(self) -> None:
        for ns in self.namespaces:
            subprocess.run([*self.sudo, "ip", "netns", "del", ns], capture_output=True)
        subprocess.run([*self.sudo, "ip", "link", "del", self.bridge], capture_output=True)
