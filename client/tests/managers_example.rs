//! The reference's Managers example prints the reference's results.

#[allow(dead_code)]
#[path = "../examples/manager_dict_list.rs"]
mod example;

#[test]
fn the_manager_example_prints_the_reference_output() {
    let mut out = Vec::new();
    example::run(&mut out).unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "{1: '1', '2': 2, 0.25: None}\n[9, 8, 7, 6, 5, 4, 3, 2, 1, 0]\n"
    );
}

#[allow(dead_code)]
#[path = "../examples/manager_namespace.rs"]
mod namespace_example;

#[test]
fn the_namespace_example_prints_the_reference_output() {
    let mut out = Vec::new();
    namespace_example::run(&mut out).unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "Namespace(x=10, y='hello')\n12.3\n"
    );
}
