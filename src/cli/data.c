int ch_cli_data(int argc, char **argv) { (void)argc; (void)argv; return 1; }
