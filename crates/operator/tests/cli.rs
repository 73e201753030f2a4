//! The binary refuses a watches.yaml for a kind it does not serve, before it
//! touches any cluster (no API server needed).

use std::process::Command;

#[test]
fn refuses_a_watches_file_for_another_version() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let watches = dir.join("watches-v2.yaml");
    std::fs::write(
        &watches,
        "- {group: flightdeck.dev, version: v2, kind: InferenceStack}\n",
    )
    .expect("write watches");
    let output = Command::new(env!("CARGO_BIN_EXE_flightdeck-operator"))
        .arg("--watches")
        .arg(&watches)
        .args(["--log-format", "text", "--admin-listen", "127.0.0.1:0"])
        .env("KUBECONFIG", dir.join("no-such-kubeconfig"))
        .output()
        .expect("run flightdeck-operator");
    assert!(!output.status.success(), "must refuse to start");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("watches flightdeck.dev/v2 InferenceStack")
            && stderr.contains("serves flightdeck.dev/v1alpha1 InferenceStack"),
        "{stderr}"
    );
}

#[test]
fn refuses_a_missing_watches_file_naming_it() {
    let output = Command::new(env!("CARGO_BIN_EXE_flightdeck-operator"))
        .args([
            "--watches",
            "/nonexistent/watches.yaml",
            "--log-format",
            "json",
        ])
        .output()
        .expect("run flightdeck-operator");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("/nonexistent/watches.yaml"), "{stderr}");
    // JSON logs: one object per line.
    let line = stderr.lines().last().expect("a log line");
    let parsed: serde_json::Value = serde_json::from_str(line).expect("JSON log line");
    assert_eq!(parsed["level"], "ERROR");
}
