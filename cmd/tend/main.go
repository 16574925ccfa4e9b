// Command tend is an email-first support inbox server.
package main

import "fmt"

func main() { fmt.Println("tend") }
