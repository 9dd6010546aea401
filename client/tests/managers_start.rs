//! End to end: a manager server started in a child process by
//! `Manager()` / `BaseManager::start`, used from another child process.

use std::time::Duration;

use multiprocessing::connection::Address;
use multiprocessing::context::{get_context, StartMethod};
use multiprocessing::managers::{
    BaseManager, BaseProxy, DictProxy, ListProxy, Manager, ManagerError, SyncManager,
};

const KEY: &[u8] = b"start-test";

#[test]
fn manager_dict_and_list_shared_with_a_child_process() {
    let m = Manager::start("127.0.0.1:0", KEY).unwrap();
    let d = m.dict::<i64, String>().unwrap();
    let l = m.list_from(&(0..10).collect::<Vec<i64>>()).unwrap();
    let address = m.address().to_string();
    let (dt, lt) = (d.base().token().clone(), l.base().token().clone());
    // The child opens its own connection rather than reuse the parent's
    // socket, and attaches to the two objects by token.
    let child = get_context(StartMethod::Fork).process_fn(move || -> Result<(), ManagerError> {
        let address: Address = address
            .parse()
            .map_err(|e| ManagerError::State(format!("{e}")))?;
        let sm = SyncManager::connect(&address, KEY)?;
        let d =
            DictProxy::<i64, String>::from_base(BaseProxy::from_token(sm.client().clone(), dt)?);
        let l = ListProxy::<i64>::from_base(BaseProxy::from_token(sm.client().clone(), lt)?);
        d.set(&1, &"1".into())?;
        d.set(&2, &"2".into())?;
        let items = l.get_value()?;
        for (i, v) in items.iter().enumerate() {
            l.set(i as i64, &(v * 10))?;
        }
        Ok(())
    });
    child.start().unwrap();
    assert!(child.join_timeout(Duration::from_secs(20)).unwrap());
    assert_eq!(child.exitcode().unwrap(), Some(0));
    assert_eq!(d.to_string(), "{1: '1', 2: '2'}");
    assert_eq!(
        l.get_value().unwrap(),
        (0..10).map(|i| i * 10).collect::<Vec<i64>>()
    );
}

#[test]
fn manager_function_and_shutdown() {
    let mut m = multiprocessing::managers::Manager().unwrap();
    let q = m.queue::<String>().unwrap();
    q.put(&"x".into()).unwrap();
    assert_eq!(q.get().unwrap(), "x");
    let pid = m.base().process().unwrap().pid().unwrap();
    assert!(pid.is_some());
    m.shutdown().unwrap();
    m.shutdown().unwrap(); // idempotent
    assert!(matches!(
        q.put(&"y".into()),
        Err(ManagerError::ConnectionLost(_))
    ));
}

#[test]
fn drop_shuts_the_server_down() {
    let address;
    {
        let mut b = BaseManager::sync("127.0.0.1:0", KEY);
        b.start().unwrap();
        address = b.address().unwrap().clone();
        SyncManager::connect(&address, KEY).unwrap();
    }
    // The child has been joined: nothing listens there any more.
    assert!(matches!(
        SyncManager::connect(&address, KEY),
        Err(ManagerError::Connect { .. })
    ));
}

#[test]
fn start_twice_and_bad_address_are_errors() {
    let mut b = BaseManager::sync("127.0.0.1:0", KEY);
    b.start().unwrap();
    assert!(matches!(b.start(), Err(ManagerError::State(_))));
    let mut bad = BaseManager::sync("256.0.0.1:0", KEY);
    assert!(matches!(bad.start(), Err(ManagerError::Start(_))));
    let mut nothing = BaseManager::sync("127.0.0.1:1", KEY);
    assert!(nothing.connect().is_err());
}
