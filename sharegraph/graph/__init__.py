"""Stage 2, graph: attribution of orders and the graph model (people, edges, shares, upline)."""
