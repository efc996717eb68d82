"""Transfer jobs for departing and moving staff: customers and group chats."""
