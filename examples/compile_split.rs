//! Where a first compile's time goes. First, each graph's first call on a fresh device
//! (matmuls of 1024² and 96², the first with bias + GELU; a GELU), with quick first runs off and
//! then with the default (on hardware adapters a matmul's first run takes its quick kernel while
//! the specialized one compiles in the background). Then the specialized kernels' WGSL, compiled
//! again on a fresh wgpu device in two steps — `create_shader_module` (naga parses and
//! validates) and `create_compute_pipeline` (naga writes SPIR-V, the driver compiles it) —
//! beside a trivial kernel and a plain tiled matmul. Run it with the driver's disk cache off
//! (NVIDIA: `__GL_SHADER_DISK_CACHE=0`) and `TMATH_PIPELINE_CACHE=off` to see cold compiles.
//!
//! `cargo run --release --example compile_split`
use std::time::Instant;
use tmath::{Device, Tensor};

const TRIVIAL: &str = "
@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    if id.x < arrayLength(&out) { out[id.x] = out[id.x] * 2.0; }
}";

/// A plain tiled matmul (16×16 tiles through workgroup memory, one output a thread): how fast
/// the driver compiles the simplest kernel of the kind.
const SIMPLE_MATMUL: &str = "
@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
const N: u32 = 1024u;
var<workgroup> ta: array<f32, 256>;
var<workgroup> tb: array<f32, 256>;
@compute @workgroup_size(16, 16)
fn main(@builtin(global_invocation_id) g: vec3<u32>, @builtin(local_invocation_id) l: vec3<u32>) {
    var acc = 0.0;
    for (var k0 = 0u; k0 < N; k0 += 16u) {
        ta[l.y * 16u + l.x] = a[g.y * N + k0 + l.x];
        tb[l.y * 16u + l.x] = b[(k0 + l.y) * N + g.x];
        workgroupBarrier();
        for (var k = 0u; k < 16u; k++) { acc += ta[l.y * 16u + k] * tb[k * 16u + l.x]; }
        workgroupBarrier();
    }
    out[g.y * N + g.x] = acc;
}";

fn main() {
    let mut sources = vec![
        ("trivial".to_string(), TRIVIAL.to_string()),
        ("plain tiled matmul".to_string(), SIMPLE_MATMUL.to_string()),
    ];
    // Each graph's first call on a fresh device: first with quick first runs off (the
    // specialized kernels on the caller's path; their sources are compiled again below), then
    // with the default (on hardware adapters a matmul's first run takes its quick kernel).
    for mode in [Some(false), None] {
        let dev = Device::wgpu().unwrap();
        tmath::debug::set_quick_first(&dev, mode);
        let a = Tensor::randn(&[1024, 1024], 1, &dev).unwrap();
        let b = Tensor::randn(&[1024, 1024], 2, &dev).unwrap();
        let c = Tensor::randn(&[1024], 3, &dev).unwrap();
        let (s1, s2) = (
            Tensor::randn(&[96, 96], 4, &dev).unwrap(),
            Tensor::randn(&[96, 96], 5, &dev).unwrap(),
        );
        tmath::eval(&[&a, &b, &c, &s1, &s2]).unwrap();
        dev.synchronize().unwrap();
        let graphs: [(&str, &dyn Fn() -> Tensor); 4] = [
            ("matmul 1024²", &|| a.matmul(&b).unwrap()),
            ("matmul 96² (4×4 outputs a thread)", &|| {
                s1.matmul(&s2).unwrap()
            }),
            ("matmul + bias + gelu", &|| {
                a.matmul(&b).unwrap().add(&c).unwrap().gelu().unwrap()
            }),
            ("gelu", &|| a.gelu().unwrap()),
        ];
        for (name, graph) in graphs {
            tmath::debug::start_shader_log();
            let s0 = dev.stats();
            let t0 = Instant::now();
            let y = graph();
            tmath::eval(&[&y]).unwrap();
            dev.synchronize().unwrap();
            let ms = t0.elapsed().as_secs_f64() * 1e3;
            let log = tmath::debug::take_shader_log();
            let s1 = dev.stats();
            let caller = |s: &tmath::Stats| s.compiles - s.background_compiles;
            println!(
                "tmath first call{}, {name}: {ms:.1} ms ({} pipeline(s) compiled on the caller's path)",
                if s1.quick_dispatches > s0.quick_dispatches {
                    " (quick kernel)"
                } else {
                    ""
                },
                caller(&s1) - caller(&s0),
            );
            if mode == Some(false) {
                for (i, s) in log.into_iter().enumerate() {
                    sources.push((format!("{name} #{i} ({} lines)", s.lines().count()), s));
                }
            }
        }
    }
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
        power_preference: wgpu::PowerPreference::HighPerformance,
        ..Default::default()
    }))
    .expect("an adapter");
    let (device, _queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        required_limits: adapter.limits(),
        required_features: adapter.features() & wgpu::Features::SUBGROUP,
        ..Default::default()
    }))
    .expect("a device");
    println!("{}", adapter.get_info().name);
    for (name, source) in sources {
        let t0 = Instant::now();
        // As T-Math compiles its matmul: without naga's injected bounds checks.
        // SAFETY: the sources are T-Math's own kernels (or the trivial one) and are only
        // compiled here, never dispatched.
        let module = unsafe {
            device.create_shader_module_trusted(
                wgpu::ShaderModuleDescriptor {
                    label: None,
                    source: wgpu::ShaderSource::Wgsl(source.into()),
                },
                wgpu::ShaderRuntimeChecks::unchecked(),
            )
        };
        let t1 = Instant::now();
        let _pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: None,
            layout: None,
            module: &module,
            entry_point: Some("main"),
            compilation_options: Default::default(),
            cache: None,
        });
        let t2 = Instant::now();
        println!(
            "{name}: shader module {:.1} ms, pipeline {:.1} ms",
            (t1 - t0).as_secs_f64() * 1e3,
            (t2 - t1).as_secs_f64() * 1e3
        );
    }
}
