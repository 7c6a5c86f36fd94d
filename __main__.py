"""manila-dhss: one tenant share network's share server, as Manila's generic driver builds it."""

from dhss_components.program import share_server_program

share_server_program()
