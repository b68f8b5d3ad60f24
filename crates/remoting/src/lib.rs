//! rmq-remoting (in progress).
