"""The worker processes' side: phones, their activities, and the process that holds them."""
