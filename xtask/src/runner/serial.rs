//! Serial ports, as a board's USB adapter and QEMU's pty both appear.

use anyhow::{Context, Result};
use std::path::Path;
use std::time::Duration;

/// Opens a serial port at 115200 8N1 without flow control, reads timing out after 100 ms.
pub fn open_port(path: &Path) -> Result<Box<dyn serialport::SerialPort>> {
    let name = path.to_string_lossy();
    serialport::new(name.as_ref(), 115_200)
        .data_bits(serialport::DataBits::Eight)
        .parity(serialport::Parity::None)
        .stop_bits(serialport::StopBits::One)
        .flow_control(serialport::FlowControl::None)
        .timeout(Duration::from_millis(100))
        .open()
        .with_context(|| format!("opening serial port {name}"))
}
