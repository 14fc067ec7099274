// A Swift hello world: the start-up baseline the cold-start demo compares against.
print("hello, world")
