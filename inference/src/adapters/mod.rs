//! Adapters that change what a base model does: the LoRA family (kohya, PEFT, LoHa, LoKr) and
//! ControlNet.

pub mod controlnet;
pub mod lora;
