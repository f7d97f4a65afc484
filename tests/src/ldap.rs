//! A real OpenLDAP `slapd` on loopback, for the LDAP import's tests: its own configuration, mdb
//! database and port in a temporary folder, so it needs no root, no `/var/run/slapd` and leaves
//! the system's `slapd` (if any) alone. Entries go in and out through Debian's `ldap-utils`, as
//! an administrator would make them, and carry slapd's own `entryUUID`s, which the import keys
//! on.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

pub const BASE_DN: &str = "dc=clinic,dc=example";

pub struct Slapd {
    /// `ldap://127.0.0.1:PORT`
    pub url: String,
    pub base_dn: String,
    pub admin_dn: String,
    pub admin_password: String,
    child: std::process::Child,
    dir: tempfile::TempDir,
}

/// Killed and reaped here rather than by tokio's `kill_on_drop`: a test process exits before
/// tokio reaps, and a container's init may never collect the zombie.
impl Drop for Slapd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `PRAXIS_TEST_SLAPD`, else Debian's. Without it the test passes with a note, unless the run
/// requires its peers (CI).
fn slapd_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PRAXIS_TEST_SLAPD")
        .filter(|path| !path.is_empty())
        .map_or_else(|| PathBuf::from("/usr/sbin/slapd"), PathBuf::from);
    if path.is_file() {
        return Some(path);
    }
    let reason = format!(
        "{} not found (apt install slapd ldap-utils)",
        path.display()
    );
    if std::env::var_os("PRAXIS_TEST_REQUIRE_PEERS").is_some() {
        panic!("slapd required in this run: {reason}");
    }
    eprintln!("LDAP test skipped: {reason}");
    None
}

/// slapd.conf rather than cn=config: one file, no slapadd step. Debian builds mdb as a module.
/// Without access rules anyone may read; the administrator is the rootdn and writes.
fn config(dir: &Path, admin_dn: &str, password: &str) -> String {
    let dir = dir.display();
    let schemas: String = ["core", "cosine", "inetorgperson", "nis"]
        .iter()
        .map(|name| format!("include /etc/ldap/schema/{name}.schema\n"))
        .collect();
    format!(
        "{schemas}pidfile \"{dir}/slapd.pid\"\nargsfile \"{dir}/slapd.args\"\n\
         modulepath /usr/lib/ldap\nmoduleload back_mdb\n\
         database mdb\nsuffix \"{BASE_DN}\"\nrootdn \"{admin_dn}\"\nrootpw {password}\n\
         directory \"{dir}/data\"\n"
    )
}

/// Starts slapd and seeds the base entry with `ou=people` and `ou=groups`; `None` when this
/// machine has no slapd (see [`slapd_binary`]).
pub async fn start() -> Option<Slapd> {
    let binary = slapd_binary()?;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("data")).expect("data dir");
    let admin_dn = format!("cn=admin,{BASE_DN}");
    let admin_password = random_password();
    let conf = dir.path().join("slapd.conf");
    std::fs::write(&conf, config(dir.path(), &admin_dn, &admin_password)).expect("slapd.conf");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free loopback port");
    let url = format!("ldap://127.0.0.1:{port}");
    // A file, not a pipe: nobody drains slapd's output while it runs.
    let log_file = std::fs::File::create(dir.path().join("slapd.log")).expect("slapd.log");
    // `-d 0` keeps it in the foreground (a child we can kill) without debug chatter.
    let child = std::process::Command::new(&binary)
        .arg("-f")
        .arg(&conf)
        .args(["-h", &format!("{url}/"), "-d", "0"])
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().expect("log"))
        .stderr(log_file)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", binary.display()));
    let mut slapd = Slapd {
        url,
        base_dn: BASE_DN.into(),
        admin_dn,
        admin_password,
        child,
        dir,
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(Some(status)) = slapd.child.try_wait() {
            slapd.failed(&format!("exited with {status}"));
        }
        // The root DSE answers as soon as slapd serves, before any entry exists.
        let root_dse = ["-x", "-H", &slapd.url, "-b", "", "-s", "base"];
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
            && ldap_tool("ldapsearch", &root_dse, None).await.is_ok()
        {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            slapd.failed("not serving after 10 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    slapd
        .add(&format!(
            "dn: {BASE_DN}\nobjectClass: dcObject\nobjectClass: organization\ndc: clinic\n\
             o: Clinic\n\n\
             dn: ou=people,{BASE_DN}\nobjectClass: organizationalUnit\nou: people\n\n\
             dn: ou=groups,{BASE_DN}\nobjectClass: organizationalUnit\nou: groups\n"
        ))
        .await;
    Some(slapd)
}

fn random_password() -> String {
    use rand::distributions::{Alphanumeric, DistString};
    Alphanumeric.sample_string(&mut rand::thread_rng(), 24)
}

/// Runs an `ldap-utils` tool, feeding `stdin`; its stdout, or its stderr when it failed.
async fn ldap_tool(tool: &str, args: &[&str], stdin: Option<&str>) -> Result<String, String> {
    let mut child = Command::new(tool)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {tool} (apt install ldap-utils): {e}"));
    let mut input = child.stdin.take().expect("stdin");
    input
        .write_all(stdin.unwrap_or_default().as_bytes())
        .await
        .expect("write stdin");
    drop(input);
    let output = child.wait_with_output().await.expect("wait");
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!(
            "{tool} {args:?}: {}: {}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr),
            String::from_utf8_lossy(&output.stdout)
        ))
    }
}

impl Slapd {
    /// Panics with slapd's output; unwinding drops `self`, which stops slapd.
    fn failed(&self, why: &str) -> ! {
        let output = std::fs::read_to_string(self.dir.path().join("slapd.log"));
        panic!(
            "slapd on {}: {why}\n--- slapd output ---\n{}",
            self.url,
            output.unwrap_or_default()
        )
    }

    /// Runs `tool` bound as the administrator; panics with its output when it fails.
    async fn admin(&self, tool: &str, extra: &[&str], stdin: Option<&str>) -> String {
        let mut args = vec![
            "-x",
            "-H",
            &self.url,
            "-D",
            &self.admin_dn,
            "-w",
            &self.admin_password,
        ];
        args.extend_from_slice(extra);
        ldap_tool(tool, &args, stdin)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Adds the LDIF's entries (`ldapadd`).
    pub async fn add(&self, ldif: &str) {
        self.admin("ldapadd", &[], Some(ldif)).await;
    }

    /// Applies an LDIF of `changetype: modify` (or other) records (`ldapmodify`).
    pub async fn modify(&self, ldif: &str) {
        self.admin("ldapmodify", &[], Some(ldif)).await;
    }

    pub async fn delete(&self, dn: &str) {
        self.admin("ldapdelete", &[dn], None).await;
    }

    /// Entries under the base matching `filter`, with operational attributes (`entryUUID`,
    /// timestamps) as LDIF, lines unwrapped.
    pub async fn search(&self, filter: &str) -> String {
        self.admin(
            "ldapsearch",
            &[
                "-LLL",
                "-o",
                "ldif-wrap=no",
                "-b",
                &self.base_dn,
                filter,
                "*",
                "+",
            ],
            None,
        )
        .await
    }

    /// The temporary folder holding slapd's configuration, database and `slapd.log`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn slapd_adds_modifies_and_deletes() {
        let Some(ldap) = super::start().await else {
            return;
        };
        let ada = format!("uid=ada,ou=people,{}", ldap.base_dn);
        ldap.add(&format!(
            "dn: {ada}\nobjectClass: inetOrgPerson\nuid: ada\ncn: Ada Lovelace\nsn: Lovelace\n\
             mail: ada@clinic.example\nemployeeNumber: 1815\n\n\
             dn: cn=nurses,ou=groups,{}\nobjectClass: groupOfNames\ncn: nurses\nmember: {ada}\n",
            ldap.base_dn
        ))
        .await;
        ldap.modify(&format!(
            "dn: {ada}\nchangetype: modify\nreplace: mail\nmail: ada@lovelace.example\n"
        ))
        .await;
        let found = ldap.search("(uid=ada)").await;
        assert!(found.contains("mail: ada@lovelace.example"), "{found}");
        assert!(!found.contains("ada@clinic.example"), "{found}");
        assert!(found.contains("employeeNumber: 1815"), "{found}");
        assert!(found.contains("entryUUID: "), "{found}");
        let group = ldap.search("(cn=nurses)").await;
        assert!(group.contains(&format!("member: {ada}")), "{group}");
        ldap.delete(&ada).await;
        assert!(!ldap.search("(uid=ada)").await.contains("uid=ada"));
    }
}
