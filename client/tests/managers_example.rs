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

#[allow(dead_code)]
#[path = "../examples/manager_maths.rs"]
mod maths_example;

#[test]
fn the_maths_example_prints_the_reference_output() {
    let mut out = Vec::new();
    maths_example::run(&mut out).unwrap();
    assert_eq!(String::from_utf8(out).unwrap(), "7\n56\n");
}

#[allow(dead_code)]
#[path = "../examples/manager_maths_untyped.rs"]
mod maths_untyped_example;

#[test]
fn the_untyped_maths_example_prints_the_same() {
    let mut out = Vec::new();
    maths_untyped_example::run(&mut out).unwrap();
    assert_eq!(String::from_utf8(out).unwrap(), "7\n56\n");
}

#[allow(dead_code)]
#[path = "../examples/manager_queue_remote.rs"]
mod queue_remote_example;

#[test]
fn the_remote_queue_example_gets_what_the_other_client_put() {
    let mut out = Vec::new();
    queue_remote_example::run(&mut out).unwrap();
    assert_eq!(String::from_utf8(out).unwrap(), "'hello'\n");
}

#[allow(dead_code)]
#[path = "../examples/manager_custom.rs"]
mod custom_example;

#[allow(dead_code)]
#[path = "../examples/manager_custom_untyped.rs"]
mod custom_untyped_example;

/// What the reference's demo prints.
fn custom_demo_output() -> String {
    let rule = "-".repeat(20);
    format!(
        "{rule}\nyou called Foo.f()\nyou called Foo.g()\n\
         {rule}\nyou called Foo.g()\nyou called Foo._h()\n\
         {rule}\n<0> <1> <4> <9> <16> <25> <36> <49> <64> <81> \n\
         {rule}\nop.add(23, 45) = 68\nop.pow(2, 94) = 19807040628566084398385987584\n\
         op._exposed_ = ('abs', 'add', 'mul', 'neg', 'pow', 'sub')\n"
    )
}

#[test]
fn the_custom_managers_demo_prints_the_reference_output() {
    let mut out = Vec::new();
    custom_example::run(&mut out).unwrap();
    assert_eq!(String::from_utf8(out).unwrap(), custom_demo_output());
}

#[test]
fn the_untyped_custom_managers_demo_prints_the_same() {
    let mut out = Vec::new();
    custom_untyped_example::run(&mut out).unwrap();
    assert_eq!(String::from_utf8(out).unwrap(), custom_demo_output());
}

#[allow(dead_code)]
#[path = "../examples/manager_nesting.rs"]
mod nesting_example;

#[test]
fn the_nesting_examples_print_the_reference_output() {
    let mut out = Vec::new();
    nesting_example::run(&mut out).unwrap();
    let out = String::from_utf8(out).unwrap();
    let (first, rest) = out.split_once('\n').unwrap();
    assert!(
        first.starts_with("[<ListProxy object, typeid 'list' at 0x") && first.ends_with(">] []"),
        "{first}"
    );
    assert_eq!(
        rest,
        "['hello'] ['hello']\n{'a': 1, 'b': 2}\n{'c': 3, 'z': 26}\n[{'a': 1, 'b': 2}]\n"
    );
}
