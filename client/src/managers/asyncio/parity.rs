//! The async typed proxies have every method of the blocking ones, with
//! the same parameters: each side's `impl` blocks carry
//! `#[method_list(KEY)]`, which lists their public methods (name and
//! parameters as written) under `cfg(test)`, and this test compares the
//! lists. A method added to a blocking proxy and not to its async
//! counterpart (or the other way round) fails it.

use std::collections::BTreeMap;

use mp_proto::Value;

use super::{
    AsyncAcquireGuard, AsyncArrayProxy, AsyncBarrierProxy, AsyncConditionGuard,
    AsyncConditionProxy, AsyncDictProxy, AsyncEventProxy, AsyncListProxy, AsyncLockProxy,
    AsyncNamespaceProxy, AsyncQueueProxy, AsyncRLockProxy, AsyncSemaphoreProxy, AsyncValueProxy,
};
use crate::managers::proxies::{
    AcquireGuard, ArrayProxy, BarrierProxy, ConditionProxy, DictProxy, EventProxy, ListProxy,
    LockProxy, NamespaceProxy, QueueProxy, RLockProxy, SemaphoreProxy, ValueProxy,
};

type Listing = &'static [(&'static str, &'static str)];

/// A blocking proxy's name, its listings, its async counterpart's, and
/// the blocking methods it has no counterpart of.
type Pair = (
    &'static str,
    Vec<Listing>,
    Vec<Listing>,
    &'static [&'static str],
);

/// Blocking methods with no async method of that name, and why.
const SYNC_ONLY: &[(&str, &str)] = &[(
    "from_base",
    "an async proxy is made from its base by AsyncProxyType::from_base",
)];

/// Async methods with no blocking method of that name, and why.
const ASYNC_ONLY: &[(&str, &str)] = &[
    (
        "acquire_again",
        "a task is not a thread: an RLock's re-entry goes through the guard",
    ),
    ("owner", "the owner number a guard acquired as"),
];

/// A lock's blocking `release` releases as the calling thread, the owner
/// the server knows; an async acquisition's owner is its guard's own
/// number, so only the guard releases it.
const NO_GUARDLESS_RELEASE: &[&str] = &["release"];

/// Every method of `sync` missing from `asynchronous` or taking other
/// parameters there (but those in `sync_only`, and [`SYNC_ONLY`]), and
/// every method of `asynchronous` missing from `sync`, as messages.
fn differences(
    name: &str,
    sync: &[Listing],
    asynchronous: &[Listing],
    sync_only: &[&str],
) -> Vec<String> {
    let collect = |lists: &[Listing]| -> BTreeMap<&str, &str> {
        lists.iter().flat_map(|l| l.iter().copied()).collect()
    };
    let (sync, asynchronous) = (collect(sync), collect(asynchronous));
    let mut found = Vec::new();
    for (method, params) in &sync {
        if SYNC_ONLY.iter().any(|(m, _)| m == method) || sync_only.contains(method) {
            continue;
        }
        match asynchronous.get(method) {
            None => found.push(format!("{name}: no async `{method}({params})`")),
            Some(p) if p != params => found.push(format!(
                "{name}: `{method}` takes ({params}) but its async counterpart ({p})"
            )),
            Some(_) => {}
        }
    }
    for method in asynchronous.keys() {
        if !sync.contains_key(method) && !ASYNC_ONLY.iter().any(|(m, _)| m == method) {
            found.push(format!(
                "{name}: async `{method}` has no blocking counterpart"
            ));
        }
    }
    found
}

#[test]
fn every_blocking_proxy_method_has_its_async_counterpart() {
    type V = Value;
    let none: &'static [&'static str] = &[];
    let pairs: Vec<Pair> = vec![
        (
            "DictProxy",
            vec![DictProxy::<V, V>::LISTED],
            vec![AsyncDictProxy::<V, V>::LISTED],
            none,
        ),
        (
            "ListProxy",
            vec![ListProxy::<V>::LISTED],
            vec![AsyncListProxy::<V>::LISTED],
            none,
        ),
        (
            "ValueProxy",
            vec![ValueProxy::<V>::LISTED],
            vec![AsyncValueProxy::<V>::LISTED],
            none,
        ),
        (
            "ArrayProxy",
            vec![ArrayProxy::<V>::LISTED],
            vec![AsyncArrayProxy::<V>::LISTED],
            none,
        ),
        (
            "NamespaceProxy",
            vec![NamespaceProxy::LISTED],
            vec![AsyncNamespaceProxy::LISTED],
            none,
        ),
        (
            "QueueProxy",
            vec![QueueProxy::<V>::LISTED],
            vec![AsyncQueueProxy::<V>::LISTED],
            none,
        ),
        (
            "LockProxy",
            vec![LockProxy::LISTED, LockProxy::LISTED_LOCK],
            vec![AsyncLockProxy::LISTED, AsyncLockProxy::LISTED_LOCK],
            NO_GUARDLESS_RELEASE,
        ),
        (
            "RLockProxy",
            vec![RLockProxy::LISTED],
            vec![AsyncRLockProxy::LISTED],
            NO_GUARDLESS_RELEASE,
        ),
        (
            "SemaphoreProxy",
            vec![SemaphoreProxy::LISTED],
            vec![
                AsyncSemaphoreProxy::LISTED,
                AsyncSemaphoreProxy::LISTED_SEMAPHORE,
            ],
            none,
        ),
        (
            "EventProxy",
            vec![EventProxy::LISTED],
            vec![AsyncEventProxy::LISTED],
            none,
        ),
        (
            // The server knows a condition's owner by the acquisition, so
            // the async waits and notifies are the guard's.
            "ConditionProxy",
            vec![ConditionProxy::LISTED, AcquireGuard::LISTED],
            vec![AsyncConditionProxy::LISTED, AsyncConditionGuard::LISTED],
            none,
        ),
        (
            "BarrierProxy",
            vec![BarrierProxy::LISTED],
            vec![AsyncBarrierProxy::LISTED],
            none,
        ),
        (
            "AcquireGuard",
            vec![AcquireGuard::LISTED],
            vec![AsyncAcquireGuard::LISTED],
            none,
        ),
    ];
    let mut found = Vec::new();
    for (name, sync, asynchronous, sync_only) in &pairs {
        assert!(
            !sync.iter().all(|l| l.is_empty()),
            "{name}: nothing listed on the blocking side"
        );
        found.extend(differences(name, sync, asynchronous, sync_only));
    }
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn the_comparison_finds_a_missing_method_and_a_changed_parameter() {
    const SYNC: Listing = &[("get", "i : i64"), ("len", ""), ("from_base", "base : B")];
    const ASYNC: Listing = &[("get", "i : usize"), ("extra", "")];
    let found = differences("P", &[SYNC], &[ASYNC], &[]);
    assert_eq!(
        found,
        [
            "P: `get` takes (i : i64) but its async counterpart (i : usize)",
            "P: no async `len()`",
            "P: async `extra` has no blocking counterpart",
        ]
    );
}

#[test]
fn the_listing_is_the_methods_as_written() {
    let wait_for = ConditionProxy::LISTED
        .iter()
        .find(|(m, _)| *m == "wait_for")
        .map(|(_, p)| *p);
    assert_eq!(
        wait_for,
        Some("mut predicate : F, timeout : Option < Duration >")
    );
    assert!(
        !DictProxy::<Value, Value>::LISTED
            .iter()
            .any(|(m, _)| *m == "pairs"),
        "a private method is not listed"
    );
}
