module coiobench

go 1.19
