//! The binary's own messages: what `gammainfra` prints for a mistake in its environment,
//! configuration or catalog, run as an operator runs it (a clean environment, a
//! temporary HOME, standard error a pipe).

use std::path::Path;
use std::process::Output;

/// Runs the binary with only `env` (and PATH) set, HOME a fresh directory, and waits
/// at most a minute.
async fn run(args: &[&str], env: &[(&str, &str)], home: &Path) -> Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_gammainfra"));
    cmd.args(args)
        .env_clear()
        .env("HOME", home)
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .current_dir(home)
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    tokio::time::timeout(std::time::Duration::from_secs(60), cmd.output())
        .await
        .expect("the command finishes")
        .expect("run")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `catalog check` lists a collision of names together with the other problems of the
/// model involved.
#[tokio::test]
async fn catalog_check_reports_an_alias_collision_with_the_models_other_errors() {
    let dir = tempfile::tempdir().expect("dir");
    let builtin =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("catalog/catalog.toml"))
            .expect("catalog");
    let extra = r#"
[[models]]
id = "acme/clash"
name = "Clash"
owned_by = "acme"
aliases = ["openai/gpt-4o"]
context_window = 0
max_output_tokens = 100
[[models.endpoints]]
provider = "openai"
upstream_id = "acme-clash"
verified = { date = "2026-05-15", method = "test" }
pricing = { input = "1", output = "2", source = { kind = "provider", url = "https://example.com/pricing", read = "2026-11-25" } }
"#;
    let file = dir.path().join("catalog.toml");
    std::fs::write(&file, format!("{builtin}\n{extra}")).expect("write");
    let file = file.display().to_string();
    let out = run(&["catalog", "check", &file], &[], dir.path()).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let n =
        builtin.matches("\n[[models]]").count() + usize::from(builtin.starts_with("[[models]]"));
    assert_eq!(
        stderr(&out),
        format!(
            "{file}: catalog has 2 problem(s):\n  - models[{n}] (acme/clash): context_window and max_output_tokens must be positive\n  - models (acme/clash): name `openai/gpt-4o` also names openai/gpt-4o\n"
        )
    );
}

/// An admin command with `GAMMAINFRA_URL` lacking its scheme says so, instead of the
/// HTTP library's "invalid format".
#[tokio::test]
async fn admin_commands_ask_for_a_url_with_a_scheme() {
    let dir = tempfile::tempdir().expect("dir");
    let out = run(
        &["accounts", "create", "--email", "a@example.com"],
        &[
            ("GAMMAINFRA_URL", "127.0.0.1:8080"),
            ("GAMMAINFRA_ADMIN_TOKEN", crate::harness::ADMIN),
        ],
        dir.path(),
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(
        stderr(&out),
        "gammainfra: --url / GAMMAINFRA_URL must be a URL with a scheme, such as http://127.0.0.1:8080 (got \"127.0.0.1:8080\")\n"
    );
    let out = run(
        &[
            "accounts",
            "create",
            "--email",
            "a@example.com",
            "--url",
            "ftp://127.0.0.1:8080",
        ],
        &[("GAMMAINFRA_ADMIN_TOKEN", crate::harness::ADMIN)],
        dir.path(),
    )
    .await;
    assert_eq!(
        stderr(&out),
        "gammainfra: --url / GAMMAINFRA_URL must be an http:// or https:// URL, such as http://127.0.0.1:8080 (got \"ftp://127.0.0.1:8080\")\n"
    );
}

/// A bare path as the database URL is refused with the URL to write.
#[tokio::test]
async fn a_bare_database_path_is_refused_with_the_url_to_write() {
    let dir = tempfile::tempdir().expect("dir");
    let out = run(
        &["serve"],
        &[
            ("GAMMAINFRA_DATABASE_URL", "/srv/gi.db"),
            ("GAMMAINFRA_LISTEN", "127.0.0.1:0"),
        ],
        dir.path(),
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).ends_with("invalid configuration:\n  - database_url / GAMMAINFRA_DATABASE_URL: must be sqlite://PATH or postgres://USER@HOST/DB, not a bare path; for the file /srv/gi.db write sqlite:///srv/gi.db\n"),
        "{}",
        stderr(&out)
    );
}

/// `serve` with AWS credentials in the environment and no `AWS_REGION`: the credential
/// chain takes its region from Bedrock's regions instead of asking the instance
/// metadata service (whose failure off EC2 was logged at length), and the logs, written
/// to a pipe, carry no ANSI colour codes.
#[tokio::test]
async fn serve_without_aws_region_logs_no_instance_metadata_noise_and_no_colours() {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt};
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("data");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_gammainfra"))
        .arg("serve")
        .env_clear()
        .env("HOME", dir.path())
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_ACCESS_KEY_ID", crate::harness::AWS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", crate::harness::AWS_SECRET)
        .env("GAMMAINFRA_BEDROCK_REGIONS", "eu-central-1")
        .env("GAMMAINFRA_LISTEN", "127.0.0.1:0")
        .env("GAMMAINFRA_DATA_DIR", &data)
        .current_dir(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("serve");
    let mut stderr = tokio::io::BufReader::new(child.stderr.take().expect("stderr"));
    let mut log = String::new();
    let listening = tokio::time::timeout(std::time::Duration::from_secs(60), async {
        loop {
            let mut line = String::new();
            if stderr.read_line(&mut line).await.expect("read") == 0 {
                return false;
            }
            log.push_str(&line);
            if line.contains("gateway listening") {
                return true;
            }
        }
    })
    .await
    .expect("the gateway starts");
    assert!(listening, "{log}");
    // Anything logged just after start too.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    child.kill().await.expect("kill");
    stderr.read_to_string(&mut log).await.expect("read");
    let lower = log.to_ascii_lowercase();
    assert!(
        !lower.contains("imds") && !lower.contains("instance metadata"),
        "{log}"
    );
    assert!(!log.contains("\x1b["), "{log:?}");
    assert!(log.contains(" INFO "), "plain text levels: {log}");
}
