//! Lowering an agent to the contents of the eBPF maps: pure, in `egress-lower`
//! (`egress_lower::ebpf::maps`, the `ebpf` backend), re-exported here for the loader.

pub use egress_lower::ebpf::maps::*;
