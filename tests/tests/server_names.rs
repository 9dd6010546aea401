//! Named objects against the real `mpserver`: declared at start with
//! `--shared` (flag and config file), published at run time, found by a
//! second client, guarded against silent replacement, listed by the admin
//! verbs and the metrics, refused with reasons.

use std::process::Command;

use mp_proto::ErrorKind;
use mp_tests::mpserver::{binary, Options, ServerProcess};
use multiprocessing::managers::{
    BaseManager, BaseProxy, DictProxy, ManagerClient, ManagerError, ProxyType, QueueProxy,
    SyncManager,
};
use multiprocessing::queues::QueueError;

fn kind(e: &ManagerError) -> ErrorKind {
    e.remote().expect("a remote error").kind.clone()
}

fn manager(server: &ServerProcess) -> BaseManager {
    let mut m = BaseManager::new(&server.address, &server.key);
    m.connect().unwrap();
    m
}

#[test]
fn a_declared_queue_carries_jobs_between_two_clients() {
    let server = ServerProcess::start_with(Options::args(&[
        "--shared",
        "jobs=Queue",
        "--shared",
        "results=dict",
    ]));
    // The producer and the consumer share nothing but the name.
    {
        let producer = ManagerClient::connect(&server.addr(), &server.key).unwrap();
        let jobs: QueueProxy<String> = producer.lookup("jobs").unwrap();
        jobs.put("job-1").unwrap();
        jobs.put("job-2").unwrap();
    }
    let consumer = ManagerClient::connect(&server.addr(), &server.key).unwrap();
    let jobs: QueueProxy<String> = consumer.lookup("jobs").unwrap();
    let results: DictProxy<String, i64> = consumer.lookup("results").unwrap();
    for _ in 0..2 {
        let job = jobs.get().unwrap();
        results.set(&job, 1).unwrap();
    }
    let mut done = results.keys().unwrap();
    done.sort();
    assert_eq!(done, ["job-1", "job-2"]);

    // CPython's `register('jobs'); m.jobs()` is `create('jobs')`.
    let info = consumer.create("jobs", vec![], Default::default()).unwrap();
    assert_eq!(info.token.id, jobs.base().token().id);
    assert_eq!(info.token.typeid, "Queue");
    let e = consumer
        .create("jobs", vec![1.into()], Default::default())
        .unwrap_err();
    assert_eq!(kind(&e), ErrorKind::TypeError);
}

#[test]
fn a_published_object_outlives_its_publisher() {
    let server = ServerProcess::start();
    {
        let publisher = manager(&server);
        let client = publisher.client().unwrap().clone();
        let info = client.create("dict", vec![], Default::default()).unwrap();
        let d: DictProxy<String, i64> = DictProxy::from_parts(
            BaseProxy::from_owned(client.clone(), info.clone()),
            info.exposed,
        );
        d.set("answer", 42).unwrap();
        publisher.publish("results", &d).unwrap();
        // A name is not silently replaced.
        assert_eq!(
            kind(&publisher.publish("results", &d).unwrap_err()),
            ErrorKind::ValueError
        );
        client.publish("results", &d, true).unwrap();
        // `d` and the publisher's connection go away here.
    }
    let reader = manager(&server);
    let sync = SyncManager::connect(&server.addr(), &server.key).unwrap();
    let same: DictProxy<String, i64> = sync.lookup("results").unwrap();
    assert_eq!(same.len().unwrap(), 1);
    drop(same);
    let d: DictProxy<String, i64> = reader.lookup("results").unwrap();
    assert_eq!(d.get("answer").unwrap(), Some(42));
    let names = reader.client().unwrap().names().unwrap();
    assert_eq!(names.len(), 1);
    assert_eq!(
        (names[0].name.as_str(), names[0].typeid.as_str()),
        ("results", "dict")
    );

    // Unpublished and no longer referred to, the object is freed.
    reader.unpublish("results").unwrap();
    assert_eq!(
        kind(&reader.lookup::<BaseProxy>("results").unwrap_err()),
        ErrorKind::KeyError
    );
    drop(d);
    let client = reader.client().unwrap();
    client.ping().unwrap();
    assert_eq!(client.number_of_objects().unwrap(), 0);
}

#[test]
fn lookups_and_publications_are_refused_with_reasons() {
    let server = ServerProcess::start_with(Options::args(&["--shared", "limits=dict"]));
    let m = manager(&server);
    let client = m.client().unwrap();
    assert_eq!(
        kind(&m.lookup::<BaseProxy>("nope").unwrap_err()),
        ErrorKind::KeyError
    );
    let e = m.lookup::<QueueProxy<i64>>("limits").unwrap_err();
    assert_eq!(kind(&e), ErrorKind::TypeError);
    assert!(e.to_string().contains("'dict'"), "{e}");
    let d = m.lookup::<BaseProxy>("limits").unwrap();
    for bad in ["", "1st", "a b", &"n".repeat(257)] {
        assert_eq!(
            kind(&client.publish(bad, &d, false).unwrap_err()),
            ErrorKind::ValueError
        );
    }
    // A name cannot hide a typeid.
    assert_eq!(
        kind(&client.publish("Queue", &d, false).unwrap_err()),
        ErrorKind::TypeError
    );
    // The refused lookup gave its reference back: the name's and `d`'s.
    drop(d);
    client.ping().unwrap();
    let objects = client.debug_info().unwrap();
    assert_eq!(objects.len(), 1);
    assert_eq!(objects[0].refcount, 1, "only the name's reference");
    assert_eq!(objects[0].names, ["limits"]);
}

#[test]
fn the_config_file_declares_with_arguments_and_the_admin_verbs_list_names() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mpserver.toml");
    std::fs::write(&config, "shared = [\"jobs=Queue(maxsize=2)\"]\n").unwrap();
    let server = ServerProcess::start_with(Options::args(&["--config", config.to_str().unwrap()]));
    let m = manager(&server);
    let jobs: QueueProxy<i64> = m.lookup("jobs").unwrap();
    jobs.put_nowait(1).unwrap();
    jobs.put_nowait(2).unwrap();
    assert!(matches!(jobs.put_nowait(3), Err(QueueError::Full)));

    let status = Command::new(binary())
        .args([
            "status",
            "--json",
            "--address",
            &server.address,
            "--authkey-file",
        ])
        .arg(server.key_path())
        .output()
        .unwrap();
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["names"][0]["name"], "jobs");
    assert_eq!(status["names"][0]["typeid"], "Queue");
    let objects = Command::new(binary())
        .args(["objects", "--address", &server.address, "--authkey-file"])
        .arg(server.key_path())
        .output()
        .unwrap();
    let text = String::from_utf8(objects.stdout).unwrap();
    assert!(
        text.lines()
            .any(|l| l.contains("Queue") && l.ends_with("jobs")),
        "{text}"
    );
}

#[test]
fn a_bad_declaration_stops_the_server_with_a_reason() {
    for (flag, says) in [
        ("1x=Queue", "invalid object name"),
        ("q=Nope", "unknown typeid 'Nope'"),
        ("q=Queue(os.system)", "not an int"),
        ("dict=Queue", "is a typeid"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key");
        std::fs::write(&key, "k").unwrap();
        let out = Command::new(binary())
            .args(["serve", "--listen", "127.0.0.1:0", "--authkey-file"])
            .arg(&key)
            .args(["--shared", flag])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{flag}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{flag}: {err}");
    }
}
