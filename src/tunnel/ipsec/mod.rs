pub mod esp;
