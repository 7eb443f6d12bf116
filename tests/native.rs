//! The shared suite on every native device this build has: each case runs once per device, on
//! a thread with a 2 MiB stack (so a 10,000-op graph proves evaluation is not recursive).

#![cfg(not(target_arch = "wasm32"))]

mod suite;

use suite::native_devices as devices;

macro_rules! native_cases {
    ($($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                for dev in devices() {
                    suite::run_on_small_stack(stringify!($case), &dev, |d| async move { suite::$case(&d).await });
                }
            }
        )*
    };
}

for_each_case!(native_cases);

#[test]
fn fuzz_generator() {
    suite::fuzz::generator_self_check();
}
