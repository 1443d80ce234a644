//! Adapters that change what a base model does: the LoRA family (kohya, PEFT, LoHa, LoKr).

pub mod lora;
