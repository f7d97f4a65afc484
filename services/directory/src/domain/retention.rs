//! AU3: retention. Events older than an enterprise's `audit.retention_days` are archived to a
//! file, then removed behind a checkpoint: the sequence and hash of the last removed event,
//! signed (HMAC-SHA256) with a key kept outside the database, so VerifyChain still proves the
//! remainder and nobody holding only the database can forge a new starting point.

use super::*;
use crate::store::audit::{BrokenLink, EventQuery, GENESIS};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, Mac};
use rand::RngCore;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The `[audit]` configuration section of a directory.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct AuditSettings {
    /// Where removed events are archived, as JSON lines per enterprise; retention runs only
    /// when set.
    pub archive_dir: Option<PathBuf>,
    /// 32 bytes, base64: signs checkpoints. Deployments pass it from a secret.
    pub checkpoint_key: Option<String>,
    /// Otherwise a file holding it, created on first start.
    pub checkpoint_key_file: Option<PathBuf>,
}

/// The section as it appears in a service's config file (`[audit]`, `PRAXIS_AUDIT__*`).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct AuditFileConfig {
    pub audit: AuditSettings,
}

/// Signs and checks checkpoints.
#[derive(Clone)]
pub struct CheckpointKey(std::sync::Arc<[u8; 32]>);

impl std::fmt::Debug for CheckpointKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CheckpointKey(<redacted>)")
    }
}

impl CheckpointKey {
    pub fn from_base64(text: &str) -> Result<Self, String> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|_| "audit.checkpoint_key: not base64".to_owned())?;
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| "audit.checkpoint_key: 32 bytes".to_owned())?;
        Ok(Self(std::sync::Arc::new(key)))
    }

    /// Reads the key from `path`, creating it (owner-only) the first time.
    pub fn from_file(path: &Path) -> Result<Self, String> {
        let fail = |e: std::io::Error| format!("{}: {e}", path.display());
        if !path.exists() {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(fail)?;
            }
            let mut key = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut key);
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            options
                .open(path)
                .and_then(|mut file| file.write_all(STANDARD.encode(key).as_bytes()))
                .map_err(fail)?;
        }
        Self::from_base64(&std::fs::read_to_string(path).map_err(fail)?)
    }

    pub fn from_settings(settings: &AuditSettings, default_file: &Path) -> Result<Self, String> {
        match settings
            .checkpoint_key
            .as_deref()
            .filter(|k| !k.trim().is_empty())
        {
            Some(key) => Self::from_base64(key),
            None => Self::from_file(
                settings
                    .checkpoint_key_file
                    .as_deref()
                    .unwrap_or(default_file),
            ),
        }
    }

    fn sign(&self, checkpoint: &Checkpoint) -> String {
        let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(self.0.as_ref()) else {
            return String::new();
        };
        mac.update(checkpoint.message().as_bytes());
        STANDARD.encode(mac.finalize().into_bytes())
    }

    fn verifies(&self, checkpoint: &Checkpoint) -> bool {
        let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(self.0.as_ref()) else {
            return false;
        };
        mac.update(checkpoint.message().as_bytes());
        let Ok(signature) = STANDARD.decode(&checkpoint.signature) else {
            return false;
        };
        mac.verify_slice(&signature).is_ok()
    }
}

/// Where an enterprise's chain starts after retention.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub enterprise_id: String,
    pub seq: i64,
    pub hash: String,
    pub created_at: DateTime<Utc>,
    pub signature: String,
}

impl Checkpoint {
    fn message(&self) -> String {
        format!(
            "praxis-audit-checkpoint\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{}",
            self.enterprise_id,
            self.seq,
            self.hash,
            self.created_at.timestamp_micros()
        )
    }
}

/// What one retention run did for one enterprise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionRun {
    pub enterprise_id: EnterpriseId,
    pub archived: u64,
    pub checkpoint_seq: i64,
    pub archive: PathBuf,
}

impl Directory {
    /// The chain's verified starting point: its checkpoint (checked against the key), or the
    /// beginning. A checkpoint that does not verify is itself the broken link.
    pub async fn chain_start(
        &self,
        enterprise_id: &str,
    ) -> Result<Result<(i64, String, Option<Checkpoint>), BrokenLink>, DomainError> {
        let Some(checkpoint) = self.store.audit_checkpoint(enterprise_id).await? else {
            return Ok(Ok((0, GENESIS.to_owned(), None)));
        };
        let key = self.checkpoint_key()?;
        if !key.verifies(&checkpoint) {
            return Ok(Err(BrokenLink {
                seq: checkpoint.seq,
                event_id: String::new(),
                problem: "the retention checkpoint's signature does not verify",
            }));
        }
        Ok(Ok((
            checkpoint.seq,
            checkpoint.hash.clone(),
            Some(checkpoint),
        )))
    }

    fn checkpoint_key(&self) -> Result<&CheckpointKey, DomainError> {
        self.audit_key
            .as_ref()
            .ok_or(DomainError::FailedPrecondition {
                reason: "AUDIT_KEY_MISSING",
                message: "this directory has no audit checkpoint key configured".to_owned(),
            })
    }

    /// Applies every enterprise's retention as of `now`: archives, then removes, the oldest
    /// events up to the first one still within the retention period.
    pub async fn apply_audit_retention(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<RetentionRun>, DomainError> {
        let Some(archive_dir) = self.audit_archive.clone() else {
            return Ok(Vec::new());
        };
        let key = self.checkpoint_key()?.clone();
        let mut runs = Vec::new();
        for enterprise_id in self.store.enterprise_ids().await? {
            let Some(enterprise) = self.store.enterprise(&enterprise_id).await? else {
                continue;
            };
            let days = enterprise.policy.audit.retention_days;
            if days == 0 {
                continue;
            }
            let cutoff = now - Duration::days(i64::from(days));
            if let Some(run) = self
                .retain(&enterprise_id, cutoff, &archive_dir, &key, now)
                .await?
            {
                runs.push(run);
            }
        }
        Ok(runs)
    }

    async fn retain(
        &self,
        enterprise_id: &EnterpriseId,
        cutoff: DateTime<Utc>,
        archive_dir: &Path,
        key: &CheckpointKey,
        now: DateTime<Utc>,
    ) -> Result<Option<RetentionRun>, DomainError> {
        let id = enterprise_id.as_str();
        // Nothing is removed from a chain that does not verify: that would hide the evidence.
        let (start_seq, start_hash, _) = match self.chain_start(id).await? {
            Ok(start) => start,
            Err(broken) => return Err(broken_chain(&broken)),
        };
        let (broken, _) = self
            .store
            .verify_chain_from(id, (start_seq, start_hash.clone()))
            .await?;
        if let Some(broken) = broken {
            return Err(broken_chain(&broken));
        }
        // The removable prefix ends before the first event still inside the period.
        let Some(up_to) = self
            .store
            .audit_prefix_before(id, start_seq, cutoff)
            .await?
        else {
            return Ok(None);
        };
        let query = EventQuery {
            enterprise_id: id.to_owned(),
            ..EventQuery::default()
        };
        let folder = archive_dir.join(id);
        std::fs::create_dir_all(&folder).map_err(io)?;
        let archive = folder.join(format!("{:012}-{:012}.jsonl", start_seq + 1, up_to.0));
        // Its own partial file: two replicas archiving at once each write whole files.
        let partial =
            archive.with_extension(format!("jsonl.{}.partial", uuid::Uuid::new_v4().simple()));
        let mut file = std::io::BufWriter::new(std::fs::File::create(&partial).map_err(io)?);
        let mut after = start_seq;
        let mut archived = 0u64;
        while after < up_to.0 {
            let page = self.store.events_after(&query, after, 1000).await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            for event in page.iter().filter(|e| e.seq <= up_to.0) {
                let line = crate::grpc::audit::export_json(event).to_string();
                writeln!(file, "{line}").map_err(io)?;
                archived += 1;
            }
        }
        file.into_inner()
            .map_err(|e| io(e.into_error()))?
            .sync_all()
            .map_err(io)?;
        std::fs::rename(&partial, &archive).map_err(io)?;
        let mut checkpoint = Checkpoint {
            enterprise_id: id.to_owned(),
            seq: up_to.0,
            hash: up_to.1,
            created_at: now
                .with_nanosecond(now.timestamp_subsec_micros() * 1000)
                .unwrap_or(now),
            signature: String::new(),
        };
        checkpoint.signature = key.sign(&checkpoint);
        self.store.remove_behind_checkpoint(&checkpoint).await?;
        Ok(Some(RetentionRun {
            enterprise_id: enterprise_id.clone(),
            archived,
            checkpoint_seq: checkpoint.seq,
            archive,
        }))
    }
}

use chrono::Timelike;

fn io(error: std::io::Error) -> DomainError {
    DomainError::Storage(format!("audit archive: {error}"))
}

fn broken_chain(broken: &BrokenLink) -> DomainError {
    DomainError::FailedPrecondition {
        reason: "AUDIT_CHAIN_BROKEN",
        message: format!(
            "the audit chain is broken at event {} ({}); nothing was removed",
            broken.seq, broken.problem
        ),
    }
}
