//! Hosts of their own: network namespaces on a private subnet, joined by a bridge, so that a
//! node killed, a link cut and a node that comes back behave as on separate machines.
//!
//! ```text
//!   this process (root namespace)            switch namespace            host namespaces
//!   flt<id>h 10.213.<k>.1/24 ──veth──▶ up0 ─┐
//!                                          br0 ◀── p0 ──veth── eth0 10.213.<k>.10  (host 0)
//!                                              ◀── p1 ──veth── eth0 10.213.<k>.11  (host 1)
//!                                              ◀── …
//! ```
//!
//! [`Network::cut`] sets a host's port on the bridge down (no packet leaves or reaches it, no
//! reset is sent: as when a cable is pulled); [`Network::restore`] sets it up again. Everything
//! is deleted when the network is dropped, and by the reaper if the test binary dies first.
//! Needs root and `ip` (iproute2): without them [`Network::create`] fails with a message saying
//! so — nothing is skipped.

use crate::reaper;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// A private network of hosts.
#[derive(Debug)]
pub struct Network {
    id: String,
    subnet: u8,
    hosts: usize,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let output = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run `ip` (install iproute2; scripts/setup.sh does): {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`ip {}` failed: {} (network namespaces need root: run the tests as root, as \
             scripts/test.sh does in CI)",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

impl Network {
    /// A network of `hosts` hosts (at most 200).
    ///
    /// # Errors
    /// When namespaces cannot be made (not root, no `ip`).
    pub fn create(hosts: usize) -> Result<Self, String> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let serial = NEXT.fetch_add(1, Ordering::Relaxed);
        let id = format!("{}{}", std::process::id() % 100_000, serial);
        let subnet = ((std::process::id() + serial * 37) % 200 + 20) as u8;
        let network = Self { id, subnet, hosts };
        network.build()?;
        Ok(network)
    }

    fn switch(&self) -> String {
        format!("flt{}s", self.id)
    }

    /// The namespace of host `i`.
    pub fn namespace(&self, i: usize) -> String {
        format!("flt{}n{i}", self.id)
    }

    /// The address of host `i`.
    pub fn address(&self, i: usize) -> String {
        format!("10.213.{}.{}", self.subnet, 10 + i)
    }

    /// The address this process has on the network.
    pub fn own_address(&self) -> String {
        format!("10.213.{}.1", self.subnet)
    }

    fn build(&self) -> Result<(), String> {
        let switch = self.switch();
        ip(&["netns", "add", &switch])?;
        reaper::delete_netns_at_exit(&switch);
        ip(&["-n", &switch, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &switch, "link", "set", "br0", "up"])?;
        let own = format!("flt{}h", self.id);
        ip(&[
            "link", "add", &own, "type", "veth", "peer", "name", "up0", "netns", &switch,
        ])?;
        reaper::delete_link_at_exit(&own);
        ip(&["-n", &switch, "link", "set", "up0", "master", "br0"])?;
        ip(&["-n", &switch, "link", "set", "up0", "up"])?;
        ip(&[
            "addr",
            "add",
            &format!("{}/24", self.own_address()),
            "dev",
            &own,
        ])?;
        ip(&["link", "set", &own, "up"])?;
        for i in 0..self.hosts {
            let host = self.namespace(i);
            let port = format!("p{i}");
            ip(&["netns", "add", &host])?;
            reaper::delete_netns_at_exit(&host);
            ip(&[
                "-n", &host, "link", "add", "eth0", "type", "veth", "peer", "name", &port, "netns",
                &switch,
            ])?;
            ip(&["-n", &switch, "link", "set", &port, "master", "br0"])?;
            ip(&["-n", &switch, "link", "set", &port, "up"])?;
            ip(&[
                "-n",
                &host,
                "addr",
                "add",
                &format!("{}/24", self.address(i)),
                "dev",
                "eth0",
            ])?;
            ip(&["-n", &host, "link", "set", "eth0", "up"])?;
            ip(&["-n", &host, "link", "set", "lo", "up"])?;
        }
        Ok(())
    }

    /// `program` with `args`, to run on host `i`.
    pub fn command(&self, i: usize, program: &str, args: &[&str]) -> Command {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &self.namespace(i), program])
            .args(args);
        command
    }

    /// Cuts host `i` off the network (its port on the bridge goes down).
    ///
    /// # Errors
    /// When the link cannot be changed.
    pub fn cut(&self, i: usize) -> Result<(), String> {
        ip(&[
            "-n",
            &self.switch(),
            "link",
            "set",
            &format!("p{i}"),
            "down",
        ])
    }

    /// Cuts the link between hosts `i` and `j` only: each gets an `unreachable` route to the
    /// other (connecting fails at once), while both still reach every other host and the
    /// test's own address.
    ///
    /// # Errors
    /// When a route cannot be added.
    pub fn cut_between(&self, i: usize, j: usize) -> Result<(), String> {
        self.unreachable_routes("add", i, j)
    }

    /// Joins hosts `i` and `j` again after [`Network::cut_between`].
    ///
    /// # Errors
    /// When a route cannot be removed.
    pub fn join_between(&self, i: usize, j: usize) -> Result<(), String> {
        self.unreachable_routes("del", i, j)
    }

    /// Adds or deletes (`action`) the `unreachable` routes between hosts `i` and `j`.
    fn unreachable_routes(&self, action: &str, i: usize, j: usize) -> Result<(), String> {
        for (from, to) in [(i, j), (j, i)] {
            let to = format!("{}/32", self.address(to));
            ip(&[
                "-n",
                &self.namespace(from),
                "route",
                action,
                "unreachable",
                &to,
            ])?;
        }
        Ok(())
    }

    /// Connects host `i` again.
    ///
    /// # Errors
    /// When the link cannot be changed.
    pub fn restore(&self, i: usize) -> Result<(), String> {
        ip(&["-n", &self.switch(), "link", "set", &format!("p{i}"), "up"])
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        let _ = ip(&["link", "del", &format!("flt{}h", self.id)]);
        for i in 0..self.hosts {
            let _ = ip(&["netns", "del", &self.namespace(i)]);
        }
        let _ = ip(&["netns", "del", &self.switch()]);
    }
}
