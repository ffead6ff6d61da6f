"""Stand-ins for the services that have no emulator, speaking their real wire protocols on 127.0.0.1."""
