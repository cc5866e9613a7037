//! A kernel whose startup files fail (patch 0007): every cell ends as an error `KernelStartupFailed`
//! whose message names the files, says to restart, and lists the compiler's errors one a line
//! (evcxr's own text runs them together). Runs the project's evcxr_jupyter binary
//! (built by `kernel/build_evcxr.sh`, which `install.sh` runs) with a config dir of its own.

mod common;

use std::path::PathBuf;
use std::process::Command;

use kernel_client::messages::ReplyStatus;
use kernel_client::{KernelClient, KernelOptions, KernelSpec};

/// The project's evcxr_jupyter: the last line `build_evcxr.sh` prints (a cached build is reused).
fn evcxr_binary() -> PathBuf {
    let out = Command::new("bash")
        .arg(common::repo_root().join("kernel/build_evcxr.sh"))
        .output()
        .expect("run kernel/build_evcxr.sh");
    assert!(
        out.status.success(),
        "kernel/build_evcxr.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    PathBuf::from(stdout.lines().last().expect("a path").trim())
}

#[test]
fn a_failing_startup_file_fails_every_cell_with_the_compilers_message() {
    let root = std::env::temp_dir().join(format!("rust-mp-startup-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let config = root.join("config");
    let spec_dir = root.join("kernels/broken-startup");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::create_dir_all(&spec_dir).unwrap();
    std::fs::write(config.join("init.evcxr"), ":offline 1\n").unwrap();
    std::fs::write(
        config.join("prelude.rs"),
        "let broken: u32 = \"not a number\";\n",
    )
    .unwrap();
    let spec = serde_json::json!({
        "argv": [evcxr_binary(), "--control_file", "{connection_file}"],
        "display_name": "broken startup",
        "language": "rust",
        "env": {
            "EVCXR_CONFIG_DIR": config,
            "EVCXR_TMPDIR": root.join("build"),
        },
    });
    std::fs::write(spec_dir.join("kernel.json"), spec.to_string()).unwrap();

    let spec = KernelSpec::load(&spec_dir).unwrap();
    let mut kernel = KernelClient::start(&spec, KernelOptions::default()).unwrap();
    for cell in ["1 + 1", "println!(\"still here\");"] {
        let outcome = kernel.execute(cell).unwrap();
        assert_eq!(outcome.status, ReplyStatus::Error, "{cell}");
        let error = outcome.errors.first().expect("an iopub error");
        assert_eq!(error.ename, "KernelStartupFailed");
        assert!(error.evalue.contains("prelude.rs"), "{}", error.evalue);
        assert!(
            error.evalue.contains("restart the kernel"),
            "{}",
            error.evalue
        );
        // The compiler's message on a line of its own.
        assert!(
            error.evalue.contains("\n\nerror: mismatched types"),
            "{}",
            error.evalue
        );
        assert!(!outcome.stdout.contains("still here"));
    }
    kernel.shutdown().unwrap();
    let _ = std::fs::remove_dir_all(&root);
}
