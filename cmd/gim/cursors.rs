//! Where a device of `gim listen` stands on the large groups' timelines and the app's
//! announcements (`~announcements`). The server keeps a device's inbox seq (`ack`), not
//! its place on those timelines: the device keeps them (docs/protocol.md, Large
//! groups), here in a file per device in `cursors/` beside the profile file.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use anyhow::Context;
use gim::auth::Claims;
use serde::{Deserialize, Serialize};

/// What a device's file holds.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Stored {
    /// Whose file it is (the server, app, user and device), for a person who opens it.
    device: String,
    /// Group id to the last group seq printed.
    groups: BTreeMap<String, u64>,
}

/// A device's place on each timeline, saved as it moves.
#[derive(Debug)]
pub struct GroupCursors {
    file: PathBuf,
    stored: Stored,
}

impl GroupCursors {
    /// The cursors of the device `claims` names on `server`, kept in `dir`; none yet for a
    /// device never listened with.
    pub fn load(dir: &Path, server: &str, claims: &Claims) -> anyhow::Result<Self> {
        let device = format!("{server} app {} user {} device {}", claims.app_id, claims.user_id, claims.device_id);
        // Ids may hold any character: the file is named by a hash of whose it is.
        let file = dir.join(format!("{}.toml", &gim::auth::hash_secret(&device)[..32]));
        let stored = match std::fs::read_to_string(&file) {
            Ok(text) => toml::from_str(&text).with_context(|| format!("reading {}", file.display()))?,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Stored { device, groups: BTreeMap::new() },
            Err(err) => return Err(err).with_context(|| format!("reading {}", file.display())),
        };
        Ok(Self { file, stored })
    }

    /// The last group seq printed of `group` (0: none).
    pub fn held(&self, group: &str) -> u64 {
        self.stored.groups.get(group).copied().unwrap_or(0)
    }

    /// Moves `group` on to `seq`, and saves.
    pub fn advance(&mut self, group: &str, seq: u64) -> anyhow::Result<()> {
        self.stored.groups.insert(group.to_owned(), seq);
        self.save()
    }

    /// Forgets a group the user may no longer read, and saves.
    pub fn forget(&mut self, group: &str) -> anyhow::Result<()> {
        if self.stored.groups.remove(group).is_some() {
            self.save()?;
        }
        Ok(())
    }

    /// Writes a new file and renames it over the old one, so that a listener killed
    /// meanwhile leaves the previous cursors whole.
    fn save(&self) -> anyhow::Result<()> {
        let dir = self.file.parent().context("the cursor file has no directory")?;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let partial = self.file.with_extension("toml.partial");
        std::fs::write(&partial, toml::to_string(&self.stored)?)
            .with_context(|| format!("writing {}", partial.display()))?;
        std::fs::rename(&partial, &self.file).with_context(|| format!("writing {}", self.file.display()))
    }
}
