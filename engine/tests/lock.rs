//! One engine per data directory.

use gnomon_engine::{Engine, EngineError, EngineOptions};

#[test]
fn second_open_of_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (first, _) = Engine::open(dir.path(), EngineOptions::default()).unwrap();
    match Engine::open(dir.path(), EngineOptions::default()) {
        Err(err @ EngineError::Locked { .. }) => {
            let message = err.to_string();
            assert!(
                message.contains(&dir.path().display().to_string()),
                "{message}"
            );
            assert!(
                message.contains("another gnomon process is using it"),
                "{message}"
            );
            assert!(!err.is_retryable());
        }
        other => panic!("expected Locked, got {other:?}"),
    }
    drop(first);
    assert!(
        Engine::open(dir.path(), EngineOptions::default()).is_ok(),
        "the lock is released when the engine is dropped"
    );
}
