//! The daemon as a library: `daemon::run` on a listener the caller bound, until a shutdown the caller
//! chose, spoken to through the typed client.

use reprod::client::{Client, ClientError};
use reprod::wire::ErrorCode;

const TOKEN: &str = "in-process-test-token-0123456789";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_serves_a_given_listener_until_told_to_stop() {
    let data = tempfile::tempdir().unwrap();
    let env = [
        ("REPROD_DATA_DIR", data.path().display().to_string()),
        ("REPROD_SERVER_SUBMIT_TOKENS", format!("[\"{TOKEN}\"]")),
        ("REPROD_SERVER_WORKERS", "1".to_string()),
        ("REPROD_SERVER_SHUTDOWN_GRACE_SECS", "5".to_string()),
    ]
    .map(|(k, v)| (k.to_string(), v));
    let config = reprod::config::Config::load(None, env).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let daemon = tokio::spawn(reprod::daemon::run(
        config,
        reprod::trust::TrustMaterial::default(),
        listener,
        async {
            let _ = stopped.await;
        },
    ));
    let client = Client::new(&url, Some(TOKEN.to_string())).unwrap();
    let ask = |f: fn(&Client) -> Result<(), ClientError>| {
        let c = client.clone();
        async move { tokio::task::spawn_blocking(move || f(&c)).await.unwrap() }
    };
    // The listener is bound before the stores open: it answers once the daemon is up.
    let mut up = Err(ClientError::Usage("not asked".into()));
    for _ in 0..300 {
        up = ask(|c| {
            let h = c.health()?;
            assert_eq!(h.status, "ok");
            assert_eq!(h.queue, reprod_jobs::QueueStats::default());
            Ok(())
        })
        .await;
        if up.is_ok() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    up.unwrap();
    // An error answer comes back typed.
    ask(|c| match c.submit(b"not json") {
        Err(ClientError::Api {
            status: 400,
            code: ErrorCode::Unparsable,
            ..
        }) => Ok(()),
        other => panic!("{other:?}"),
    })
    .await
    .unwrap();
    stop.send(()).unwrap();
    let ended = tokio::time::timeout(std::time::Duration::from_secs(60), daemon).await;
    assert!(
        matches!(ended, Ok(Ok(Ok(())))),
        "the daemon stops cleanly: {ended:?}"
    );
    // Stopped means stopped: the port no longer answers.
    assert!(matches!(
        ask(|c| c.health().map(|_| ())).await,
        Err(ClientError::Transport { .. })
    ));
}
