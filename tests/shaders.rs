//! Portability proof: every WGSL kernel the JIT emits while running the shared suite on wgpu
//! (fused, and unfused where cases turn the JIT off; specialized, then all generic) is parsed and validated by naga and translated to SPIR-V (Vulkan), MSL
//! (Metal, Safari on macOS) and HLSL (DX12). A shader naga rejects fails this test.

#![cfg(all(feature = "wgpu", not(target_arch = "wasm32")))]

mod suite;

use std::collections::BTreeSet;
use tmath::Device;

fn check(source: &str) -> Result<(), String> {
    let module = naga::front::wgsl::parse_str(source)
        .map_err(|e| format!("parse: {}", e.emit_to_string(source)))?;
    // Kernels with subgroup operations (matmul's lane form on a CPU adapter) are checked with
    // the capability and the targets' versions that have them (MSL 2.1, HLSL SM 6.0).
    let subgroups = source.contains("subgroup");
    let mut caps = naga::valid::Capabilities::default();
    if subgroups {
        caps |= naga::valid::Capabilities::SUBGROUP;
    }
    let info = naga::valid::Validator::new(naga::valid::ValidationFlags::all(), caps)
        .validate(&module)
        .map_err(|e| format!("validate: {}", e.emit_to_string(source)))?;
    naga::back::spv::write_vec(&module, &info, &naga::back::spv::Options::default(), None)
        .map_err(|e| format!("spv: {e}"))?;
    let mut msl = naga::back::msl::Options::default();
    let mut opts = naga::back::hlsl::Options::default();
    if subgroups {
        msl.lang_version = (2, 1);
        opts.shader_model = naga::back::hlsl::ShaderModel::V6_0;
    }
    naga::back::msl::write_string(
        &module,
        &info,
        &msl,
        &naga::back::msl::PipelineOptions::default(),
    )
    .map_err(|e| format!("msl: {e}"))?;
    let mut hlsl = String::new();
    let popts = naga::back::hlsl::PipelineOptions::default();
    naga::back::hlsl::Writer::new(&mut hlsl, &opts, &popts)
        .write(&module, &info, None)
        .map_err(|e| format!("hlsl: {e}"))?;
    Ok(())
}

macro_rules! run_all {
    ($($case:ident),* $(,)?) => {
        fn run_suite(dev: &Device) {
            $(
                suite::run_on_small_stack(stringify!($case), dev, |d| async move { suite::$case(&d).await });
            )*
        }
    };
}

for_each_case!(run_all);

#[test]
fn every_emitted_shader_validates_and_translates() {
    let dev = match Device::wgpu() {
        Ok(d) => d,
        Err(e) => {
            assert!(
                std::env::var("TMATH_REQUIRE_GPU").is_err(),
                "TMATH_REQUIRE_GPU is set but wgpu failed: {e}"
            );
            eprintln!("wgpu unavailable, nothing to check: {e}");
            return;
        }
    };
    tmath::debug::start_shader_log();
    // The suite's JIT cases switch to JitMode::Off themselves, so unfused kernels are covered.
    run_suite(&dev);
    // Again with every kernel generic (sizes read from metadata), on a fresh device.
    let generic = Device::wgpu().expect("a second wgpu device");
    tmath::debug::set_generic_kernels(&generic, true);
    run_suite(&generic);
    let shaders: BTreeSet<String> = tmath::debug::take_shader_log().into_iter().collect();
    assert!(
        shaders.len() > 20,
        "expected many distinct kernels, got {}",
        shaders.len()
    );
    let mut failures = vec![];
    for s in &shaders {
        if let Err(e) = check(s) {
            failures.push(format!("{e}\n--- shader ---\n{s}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} shaders failed:\n{}",
        failures.len(),
        shaders.len(),
        failures.join("\n\n")
    );
    eprintln!(
        "{} distinct shaders validated and translated to SPIR-V, MSL and HLSL",
        shaders.len()
    );
}
