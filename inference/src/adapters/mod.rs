//! Adapters that change what a base model does: the LoRA family (kohya, PEFT, LoHa, LoKr),
//! ControlNet and IP-Adapter.

pub mod controlnet;
pub mod instantid;
pub mod ip_adapter;
pub mod lora;
