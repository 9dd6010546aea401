//! The reference's sharedctypes example prints the reference's results.

#[allow(dead_code)]
#[path = "../examples/sharedctypes.rs"]
mod example;

#[test]
fn the_sharedctypes_example_prints_the_reference_output() {
    let mut out = Vec::new();
    example::run(&mut out).unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "49\n0.1111111111111111\nHELLO WORLD\n[(3.515625, 39.0625), (33.0625, 4.0), (5.640625, 90.25)]\n"
    );
}
