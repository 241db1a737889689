pub mod ike;
