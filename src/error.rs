//! The one error type of the crate.

use std::fmt;

/// `Result<T, tmath::Error>`.
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong, as a value. No public function of the crate panics on user input;
/// each failure is one of these, with a message that names the op and the shapes involved.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// Operand shapes the op cannot combine (matmul inner dimensions, broadcasting, reshape size).
    Shape {
        /// The op that rejected its operands, e.g. `"matmul"`.
        op: &'static str,
        /// What was wrong, naming the shapes.
        message: String,
    },
    /// An axis argument out of range or repeated, or a permutation that is not one.
    Axis {
        /// The op that rejected the axis.
        op: &'static str,
        /// What was wrong, naming the axis and the shape.
        message: String,
    },
    /// A data buffer whose length does not match the shape it was given.
    Length {
        /// The constructor, e.g. `"from_vec"`.
        op: &'static str,
        /// The shape that was asked for.
        shape: Vec<usize>,
        /// Elements the shape needs.
        expected: usize,
        /// Elements given.
        got: usize,
    },
    /// Operands that live on different devices.
    DeviceMismatch {
        /// The op that was given them.
        op: &'static str,
    },
    /// A backend could not be started (no adapter, feature not built, WebGPU missing).
    Unavailable {
        /// `"cpu"`, `"wgpu"` or `"mlx"`.
        backend: &'static str,
        /// Why.
        message: String,
    },
    /// A tensor or kernel that exceeds a limit of the device (e.g. its largest storage binding).
    TooLarge {
        /// The op whose kernel would exceed the limit.
        op: &'static str,
        /// The limit and the size asked for.
        message: String,
    },
    /// A numerical routine that failed (e.g. an SVD that did not converge).
    Numerical {
        /// The op.
        op: &'static str,
        /// What failed.
        message: String,
    },
    /// The device failed while evaluating (device lost, out of memory, driver error).
    Device {
        /// What the backend reported.
        message: String,
    },
}

impl Error {
    pub(crate) fn shape(op: &'static str, message: impl Into<String>) -> Self {
        Error::Shape {
            op,
            message: message.into(),
        }
    }
    pub(crate) fn axis(op: &'static str, message: impl Into<String>) -> Self {
        Error::Axis {
            op,
            message: message.into(),
        }
    }
    pub(crate) fn device(message: impl Into<String>) -> Self {
        Error::Device {
            message: message.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Shape { op, message } => write!(f, "{op}: {message}"),
            Error::Axis { op, message } => write!(f, "{op}: {message}"),
            Error::Length {
                op,
                shape,
                expected,
                got,
            } => write!(
                f,
                "{op}: shape {shape:?} needs {expected} elements, but {got} were given"
            ),
            Error::DeviceMismatch { op } => {
                write!(f, "{op}: operands live on different devices")
            }
            Error::Unavailable { backend, message } => {
                write!(f, "{backend} backend unavailable: {message}")
            }
            Error::TooLarge { op, message } => {
                write!(f, "{op}: too large for the device: {message}")
            }
            Error::Numerical { op, message } => write!(f, "{op}: {message}"),
            Error::Device { message } => write!(f, "device error: {message}"),
        }
    }
}

impl std::error::Error for Error {}
