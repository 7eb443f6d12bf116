//! The floor under a small call: what wgpu itself costs per submission on this machine's best
//! adapter, without T-Math (host time to record and submit, then the wait, polled as T-Math
//! polls). Each line: the mean over 2,000 calls after 200 of warm-up.
//!
//! `cargo run --release --example wgpu_floor`
use std::time::{Duration, Instant};

const SHADER: &str = "
@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    if id.x < arrayLength(&out) { out[id.x] = x[id.x] * 2.0; }
}";

fn main() {
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
        power_preference: wgpu::PowerPreference::HighPerformance,
        ..Default::default()
    }))
    .expect("an adapter");
    let (device, queue) =
        pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor::default()))
            .expect("a device");
    let n = 1024 * 1024;
    let buf = |usage| {
        device.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size: n as u64 * 4,
            usage,
            mapped_at_creation: false,
        })
    };
    let (x, out) = (
        buf(wgpu::BufferUsages::STORAGE),
        buf(wgpu::BufferUsages::STORAGE),
    );
    let uniform = device.create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: 64,
        usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: None,
        source: wgpu::ShaderSource::Wgsl(SHADER.into()),
    });
    let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: None,
        layout: None,
        module: &module,
        entry_point: Some("main"),
        compilation_options: Default::default(),
        cache: None,
    });
    let bind_group = || {
        device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &pipeline.get_bind_group_layout(0),
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: out.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: x.as_entire_binding(),
                },
            ],
        })
    };
    let cached = bind_group();
    let wait = || {
        let start = Instant::now();
        while start.elapsed() < Duration::from_micros(500) {
            if device.poll(wgpu::PollType::Poll).unwrap().is_queue_empty() {
                return;
            }
            std::hint::spin_loop();
        }
        device.poll(wgpu::PollType::wait_indefinitely()).unwrap();
    };
    let measure = |what: &str, record: &dyn Fn()| {
        let (mut host, mut sync) = (0.0, 0.0);
        let reps = 2000;
        for i in 0..reps + 200 {
            let t0 = Instant::now();
            record();
            let t1 = Instant::now();
            wait();
            let t2 = Instant::now();
            if i >= 200 {
                host += (t1 - t0).as_secs_f64();
                sync += (t2 - t1).as_secs_f64();
            }
        }
        let f = 1e6 / reps as f64;
        println!(
            "{what}: submit {:.1} us, wait {:.1} us, total {:.1} us",
            host * f,
            sync * f,
            (host + sync) * f
        );
    };
    println!("{}", adapter.get_info().name);
    measure("empty command buffer", &|| {
        let enc = device.create_command_encoder(&Default::default());
        queue.submit([enc.finish()]);
    });
    let dispatch = |bg: &wgpu::BindGroup| {
        let mut enc = device.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            pass.set_pipeline(&pipeline);
            pass.set_bind_group(0, bg, &[]);
            pass.dispatch_workgroups((n / 256) as u32, 1, 1);
        }
        queue.submit([enc.finish()]);
    };
    measure("one dispatch (1M elements), bind group reused", &|| {
        dispatch(&cached)
    });
    measure(
        "one dispatch, a new bind group",
        &|| dispatch(&bind_group()),
    );
    measure("one dispatch, a new bind group, a 64-byte write", &|| {
        queue.write_buffer(&uniform, 0, &[0u8; 64]);
        dispatch(&bind_group())
    });
}
