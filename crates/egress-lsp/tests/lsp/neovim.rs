//! End to end with a real editor: headless Neovim (Debian's `neovim`, 0.7 or later) loads
//! `editors/nvim`, opens a policy with a deliberate error, and the diagnostic from the
//! language server must arrive in the editor. Neovim missing is a failure, not a skip.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::client::{server_command, TempDir};

const POLICY: &str = r#"/// The control plane agents report to.
destination control_plane {
    host "cp.corp.internal"
    port 443
}

capability report {
    connect control_plne
}
"#;

fn editors_nvim() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../editors/nvim")
        .canonicalize()
        .expect("editors/nvim exists")
}

#[test]
fn neovim_shows_the_diagnostic_from_the_server() {
    let version = Command::new("nvim")
        .arg("--version")
        .output()
        .expect("Neovim (`nvim`) must be installed for this test: apt-get install neovim");
    assert!(version.status.success());

    let dir = TempDir::new("neovim");
    std::fs::create_dir_all(dir.0.join(".git")).unwrap();
    let policy = dir.write("policies/main.egress", POLICY);
    let out = dir.0.join("diagnostics.json");
    let server = server_command();
    let server_args: Vec<String> = server
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let mut child = Command::new("nvim")
        .args(["--headless", "-n", "-i", "NONE", "-u"])
        .arg(editors_nvim().join("test_init.lua"))
        .arg(&policy)
        .env("EGRESS_LSP_CMD", server.get_program())
        .env("EGRESS_LSP_ARGS", server_args.join(" "))
        .env("EGRESS_TEST_OUT", &out)
        .env("EGRESS_TEST_TIMEOUT_MS", "20000")
        .env("XDG_STATE_HOME", dir.0.join("state"))
        .env("XDG_DATA_HOME", dir.0.join("data"))
        .env("XDG_CONFIG_HOME", dir.0.join("config"))
        .current_dir(&dir.0)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("Neovim did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let written = std::fs::read_to_string(&out).unwrap_or_default();
    assert!(
        status.success(),
        "nvim exited with {status:?}; it wrote: {written}"
    );
    let result: Value = serde_json::from_str(&written).unwrap();
    assert_eq!(result["filetype"], "egress", "ftdetect: {result}");
    assert_eq!(result["syntax"], "egress", "{result}");
    assert_eq!(result["clients"], 1, "{result}");
    let diagnostics = result["diagnostics"].as_array().unwrap();
    assert_eq!(diagnostics.len(), 1, "{result}");
    let diagnostic = &diagnostics[0];
    assert_eq!(diagnostic["code"], "E0010", "{result}");
    assert_eq!(diagnostic["source"], "egc");
    assert_eq!(diagnostic["severity"], 1);
    // Zero-based: `connect control_plne` is on the eighth line, the name at column 12.
    assert_eq!(diagnostic["lnum"], 7, "{result}");
    assert_eq!(diagnostic["col"], 12, "{result}");
    assert!(
        diagnostic["message"]
            .as_str()
            .unwrap()
            .contains("control_plne"),
        "{result}"
    );
}
