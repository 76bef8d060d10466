int ch_cli_train(int argc, char **argv) { (void)argc; (void)argv; return 1; }
